set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
t0=$(date +%s)
S=$PWD/.bench-state/s6
rm -rf $S
BENCH_SECONDS=${SECS:-300} bash benchmarks/expert_suite_gpu.sh $S 4 "$TASKS" > $OUT/bench_tail.log 2>&1
grep -E "exit|passed|incorrect|failed|Error|error" $OUT/bench_tail.log | tail -8
tar czf $OUT/s6-state.tgz .bench-state/s6
left=$(( ${TOTAL:-560} - ($(date +%s) - t0) ))
timeout $left python -m pytest -q -p no:cacheprovider tests/test_expert_gpu.py -k "$TESTS" > $OUT/pytest_gpu.log 2>&1
echo "pytest exit $? after $(( $(date +%s) - t0 )) s"; tail -8 $OUT/pytest_gpu.log
