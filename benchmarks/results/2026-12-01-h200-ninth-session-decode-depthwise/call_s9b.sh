set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
t0=$(date +%s)
timeout 300 python .bench-state/explore20.py > $OUT/explore20.log 2>&1
echo "explore20 exit $? after $(( $(date +%s) - t0 )) s"; grep -E "SOL|ERROR|Error|==|copy|plain|Trace" $OUT/explore20.log | cut -c1-400
