#!/usr/bin/env bash
# The suite's figures after the ninth session: the fifth session's whole-suite run, each task replaced by its
# latest bench (run from the repository root).
R=benchmarks/results
python benchmarks/suite_composite.py --memory-bound $R/2026-11-30-h200x2-expert-memory-bound/bench.json \
    $R/2026-11-30-h200x2-expert-suite-protocol2/bench.json \
    $R/2026-11-30-h200-sixth-session-cooperative-norms/bench-cooperative-first.json \
    $R/2026-12-01-h200-seventh-session-cooperative-softmax/bench.json \
    $R/2026-12-01-h200-seventh-session-cooperative-softmax/bench-kl.json \
    $R/2026-12-01-h200-eighth-session-slots/bench.json \
    $R/2026-12-01-h200-eighth-session-slots/bench-kl.json \
    $R/2026-12-01-h200-eighth-session-slots/bench-final.json \
    $R/2026-12-01-h200-ninth-session-decode-depthwise/bench-decode.json \
    $R/2026-12-01-h200-ninth-session-decode-depthwise/bench-depthwise2.json
