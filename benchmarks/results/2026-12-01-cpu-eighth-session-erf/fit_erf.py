"""The least-squares fits behind cpu.py's kw_erf (float coefficients printed to 9 digits): erf(x)/x as a
polynomial of degree 5 in x^2 on [0, 1], and erf(x) as one of degree 12 in x - 2.5 on [1, 4], each on 4000
Chebyshev nodes against mpmath's erf. Run: python benchmarks/results/2026-12-01-cpu-eighth-session-erf/fit_erf.py"""
import numpy as np, mpmath
verf = np.vectorize(lambda v: float(mpmath.erf(v)))
def fit(lo, hi, deg, center, f):
    k = np.arange(4000)
    x = (lo + hi) / 2 + (hi - lo) / 2 * np.cos(np.pi * (k + 0.5) / len(k))
    c, *_ = np.linalg.lstsq(np.vander(x - center, deg + 1), f(x), rcond=None)
    return [float(np.float32(v)) for v in c]
small = fit(0, 1, 5, 0.0, lambda x: verf(np.sqrt(x)) / np.sqrt(x))
big = fit(1, 4, 12, 2.5, verf)
print("small", ["%.9g" % v for v in small]); print("big", ["%.9g" % v for v in big])
