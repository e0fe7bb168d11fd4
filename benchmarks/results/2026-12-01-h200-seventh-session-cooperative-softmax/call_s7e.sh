set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
t0=$(date +%s)
S=$PWD/.bench-state/s7
rm -rf $S
BENCH_SECONDS=${SECS:-200} bash benchmarks/expert_suite_gpu.sh $S 4 "softmax_vocab,softmax_log_softmax" > $OUT/bench.log 2>&1
echo "bench exit $? after $(( $(date +%s) - t0 )) s"
tar czf $OUT/s7-state.tgz .bench-state/s7
timeout 60 python .bench-state/soft_check.py triton.softmax_cooperative softmax_vocab,softmax_log_softmax "((2048,4),)" > $OUT/soft_check.log 2>&1
echo "soft_check exit $? after $(( $(date +%s) - t0 )) s"
timeout 50 python .bench-state/explore10.py > $OUT/explore10.log 2>&1
echo "explore10 exit $? after $(( $(date +%s) - t0 )) s"
left=$(( 575 - ($(date +%s) - t0) ))
timeout $left python -m pytest -q -p no:cacheprovider tests/test_expert_gpu.py -k "softmax or cooperative or instancenorm or groupnorm" > $OUT/pytest_gpu.log 2>&1
echo "pytest exit $? after $(( $(date +%s) - t0 )) s"; tail -5 $OUT/pytest_gpu.log
