set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
timeout 200 python .bench-state/explore16.py > $OUT/explore16.log 2>&1
echo "explore16 exit $?"; grep -E "SOL|ERROR|Error|==|no fit" $OUT/explore16.log | cut -c1-170
timeout 330 python -m pytest -q -p no:cacheprovider tests/test_expert_gpu.py -k "softmax or cooperative or instancenorm or groupnorm" > $OUT/pytest-gpu.log 2>&1
echo "pytest exit $?"; tail -5 $OUT/pytest-gpu.log
