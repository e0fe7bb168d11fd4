"""The expert generator: kernels written from templates matched to the reference's FX graph, no network needed."""
