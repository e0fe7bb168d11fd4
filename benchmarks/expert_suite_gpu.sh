#!/usr/bin/env bash
# The expert generator over the built-in suite on a GPU machine, in parts that fit the device tool's
# 10-minute calls.
#
#   benchmarks/expert_suite_gpu.sh STATE_DIR [BUDGET] [TASKS]
#
# STATE_DIR holds the bench's store, its cache (baselines, ceilings, tuning) and its reports; bring it
# back into the next call's tree and the same command continues where the last stopped (the bench
# resumes). BUDGET is candidates per task (default 4); TASKS an optional --tasks filter (default: the
# whole suite). With several GPUs the tasks run side by side, one lane per GPU. The bench is stopped with
# Ctrl-C (SIGINT to its process group) after BENCH_SECONDS (default 520), so its reports are written for
# what finished.
set -uo pipefail
state=$1 budget=${2:-4} tasks=${3:-}
export PYTHONPATH=$PWD/src KERNELWRIGHT_CACHE_DIR=$state/cache PYTHONUNBUFFERED=1
mkdir -p "$state/cache"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$state/gpu.txt"
python -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, 'cuda', torch.version.cuda)" >> "$state/gpu.txt"
start=$(date +%s)
timeout -s INT "${BENCH_SECONDS:-520}" python -m kernelwright bench builtin --generator expert --budget "$budget" \
    ${tasks:+--tasks "$tasks"} --db "$state/bench.db" --out "$state/bench" > "$state/bench-$start.log" 2>&1
echo "exit $? after $(( $(date +%s) - start )) s" >> "$state/bench-$start.log"
tail -n 80 "$state/bench-$start.log"
