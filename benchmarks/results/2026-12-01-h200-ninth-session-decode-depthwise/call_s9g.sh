set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
t0=$(date +%s)
timeout 200 python .bench-state/explore24.py > $OUT/explore24.log 2>&1
echo "explore24 exit $? after $(( $(date +%s) - t0 )) s"; grep -E "SOL|ERROR|Error|==|copy|Trace|template|dw_tile" $OUT/explore24.log | cut -c1-200
