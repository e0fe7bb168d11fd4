set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
timeout 300 python .bench-state/explore12.py > $OUT/explore12.log 2>&1
echo "explore12 exit $?"; grep -E "SOL|ERROR|Error" $OUT/explore12.log | cut -c1-150
