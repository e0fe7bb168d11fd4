set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
t0=$(date +%s)
S=$PWD/.bench-state/s8b
rm -rf $S
BENCH_SECONDS=${SECS:-300} bash benchmarks/expert_suite_gpu.sh $S 4 "softmax_vocab,softmax_log_softmax,norm_instancenorm,norm_groupnorm" > $OUT/bench-final.log 2>&1
echo "bench exit $? after $(( $(date +%s) - t0 )) s"
cp $S/bench/bench.json $OUT/bench-final.json; cp $S/bench/bench.html $OUT/bench-final.html
python benchmarks/bench_table.py $S/bench/bench.json 2>&1 | head -6
left=$(( 560 - ($(date +%s) - t0) ))
timeout $left python -m pytest -q -p no:cacheprovider tests/test_expert_gpu.py -k "softmax or cooperative or instancenorm or groupnorm" > $OUT/pytest-gpu-final.log 2>&1
echo "pytest exit $? after $(( $(date +%s) - t0 )) s"; tail -3 $OUT/pytest-gpu-final.log
