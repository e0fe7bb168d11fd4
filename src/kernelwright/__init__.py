"""kernelwright: a PyTorch reference goes in, a faster kernel proven to compute the same thing comes out."""

__version__ = "0.1.0"
