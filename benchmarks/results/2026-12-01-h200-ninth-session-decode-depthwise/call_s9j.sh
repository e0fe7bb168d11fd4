set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
t0=$(date +%s)
timeout 150 python .bench-state/explore25.py > $OUT/explore25.log 2>&1
echo "explore25 exit $? after $(( $(date +%s) - t0 )) s"; grep -E "SOL|ERROR|Error|==|Trace" $OUT/explore25.log | cut -c1-200
timeout 200 python -m pytest -q -p no:cacheprovider tests/test_expert_gpu.py -k "attention" > $OUT/pytest-gpu-attention.log 2>&1
echo "pytest exit $? after $(( $(date +%s) - t0 )) s"; tail -3 $OUT/pytest-gpu-attention.log
