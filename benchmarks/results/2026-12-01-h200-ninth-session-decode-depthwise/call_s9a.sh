set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
t0=$(date +%s)
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 330 python .bench-state/explore19.py decode,groupnorm > $OUT/explore19.log 2>&1
echo "explore19 exit $? after $(( $(date +%s) - t0 )) s"; grep -E "SOL|ERROR|Error|==|copy" $OUT/explore19.log | cut -c1-160
left=$(( 570 - ($(date +%s) - t0) ))
timeout $left python -m pytest -q -p no:cacheprovider tests/test_expert_gpu.py -k "decode" > $OUT/pytest-gpu-decode.log 2>&1
echo "pytest exit $? after $(( $(date +%s) - t0 )) s"; tail -3 $OUT/pytest-gpu-decode.log
