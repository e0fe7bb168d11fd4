"""Benches: one optimization run per task of a suite, the suite's metrics, and their reports.

    suites.py   which tasks: builtin, a folder, a KernelBench checkout; --tasks filters
    runner.py   the bench itself: resumable, one run per task through search.controller
    results.py  per-task and per-suite results, from the store or a bench.json
    metrics.py  the formulas (fast_p, pass@k, geometric means, ...), see docs/bench.md
"""
