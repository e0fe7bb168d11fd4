#!/usr/bin/env bash
# The expert generator over the built-in suite on a GPU machine, in parts that fit the device tool's
# 10-minute calls.
#
#   benchmarks/expert_suite_gpu.sh STATE_DIR [BUDGET] [TASKS]
#
# STATE_DIR holds the bench's store, its cache (baselines, ceilings, tuning) and its reports; bring it
# back into the next call's tree (the device tool returns files, not folders: tar it whole, the SQLite
# -wal file included) and the same command continues where the last stopped. Unpack it into an empty
# folder (remove the old state first): a -wal left there from an earlier state would be replayed over the
# newer database, whose own was checkpointed away when the bench closed it. BUDGET is candidates per
# task (default 4); TASKS an optional --tasks filter (default: the whole suite). With several GPUs the
# tasks run side by side, one lane per GPU. The bench gets Ctrl-C (SIGINT, to its whole process group)
# after BENCH_SECONDS (default 420) and SIGKILL 70 s later if it has not stopped (the bench gives
# its lanes 60 s to record their runs: kernelwright.bench.lanes.INTERRUPT_GRACE_S); PYTHONFAULTHANDLER
# makes a process killed by SIGABRT print where each of its threads was.
set -uo pipefail
state=$1 budget=${2:-4} tasks=${3:-}
export PYTHONPATH=$PWD/src KERNELWRIGHT_CACHE_DIR=$state/cache PYTHONUNBUFFERED=1 PYTHONFAULTHANDLER=1
mkdir -p "$state/cache"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$state/gpu.txt"
python -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, 'cuda', torch.version.cuda)" >> "$state/gpu.txt"
start=$(date +%s)
timeout -s INT -k 70 "${BENCH_SECONDS:-420}" python -m kernelwright bench builtin --generator expert \
    --budget "$budget" ${tasks:+--tasks "$tasks"} --db "$state/bench.db" --out "$state/bench" > "$state/bench-$start.log" 2>&1
echo "exit $? after $(( $(date +%s) - start )) s" >> "$state/bench-$start.log"
tail -n 80 "$state/bench-$start.log"
