set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
timeout 240 python .bench-state/explore17.py > $OUT/explore17.log 2>&1
echo "explore17 exit $?"; grep -E "SOL|ERROR|Error|==" $OUT/explore17.log | cut -c1-170
