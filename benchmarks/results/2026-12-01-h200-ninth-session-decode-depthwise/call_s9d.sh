set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
t0=$(date +%s)
timeout 400 python .bench-state/explore22.py > $OUT/explore22.log 2>&1
echo "explore22 exit $? after $(( $(date +%s) - t0 )) s"; grep -E "SOL|ERROR|Error|==|copy|Trace" $OUT/explore22.log | cut -c1-200
