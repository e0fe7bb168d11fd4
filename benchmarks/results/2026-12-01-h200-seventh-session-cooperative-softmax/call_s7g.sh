set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
t0=$(date +%s)
S=$PWD/.bench-state/s7kl
rm -rf $S
BENCH_SECONDS=${SECS:-150} bash benchmarks/expert_suite_gpu.sh $S 4 "loss_kl_distill" > $OUT/bench-kl.log 2>&1
echo "bench exit $? after $(( $(date +%s) - t0 )) s"
tar czf $OUT/s7kl-state.tgz .bench-state/s7kl
left=$(( 400 - ($(date +%s) - t0) ))
timeout $left python -m pytest -q -p no:cacheprovider tests/test_expert_gpu.py -k "kl" > $OUT/pytest_gpu_kl.log 2>&1
echo "pytest exit $? after $(( $(date +%s) - t0 )) s"; tail -3 $OUT/pytest_gpu_kl.log
grep -E "loss_kl_distill: passed" -A2 $OUT/bench-kl.log
