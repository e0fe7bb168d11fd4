set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
t0=$(date +%s)
S=$PWD/.bench-state/s8
rm -rf $S
BENCH_SECONDS=${SECS:-450} bash benchmarks/expert_suite_gpu.sh $S 4 "softmax_vocab,softmax_log_softmax,norm_instancenorm,norm_groupnorm" > $OUT/bench.log 2>&1
echo "bench exit $? after $(( $(date +%s) - t0 )) s"
tar czf $OUT/s8-state.tgz .bench-state/s8
cp $S/bench/*.json $S/bench/*.html $OUT/ 2>/dev/null; ls $S/bench | head
python benchmarks/bench_table.py $S/bench/bench.json 2>&1 | tail -12
