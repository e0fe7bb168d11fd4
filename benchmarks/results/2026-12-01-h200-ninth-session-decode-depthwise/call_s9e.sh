set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
t0=$(date +%s)
timeout 300 python .bench-state/explore23.py > $OUT/explore23.log 2>&1
echo "explore23 exit $? after $(( $(date +%s) - t0 )) s"; grep -E "SOL|ERROR|Error|==|copy|Trace" $OUT/explore23.log | cut -c1-200
