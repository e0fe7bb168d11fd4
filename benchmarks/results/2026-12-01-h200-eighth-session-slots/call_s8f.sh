set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
t0=$(date +%s)
timeout 150 python -m pytest -q -p no:cacheprovider tests/test_expert_gpu.py -k kl > $OUT/pytest-gpu-kl.log 2>&1
echo "pytest exit $? after $(( $(date +%s) - t0 )) s"; tail -3 $OUT/pytest-gpu-kl.log
S=$PWD/.bench-state/s8kl; rm -rf $S
BENCH_SECONDS=170 bash benchmarks/expert_suite_gpu.sh $S 4 loss_kl_distill > $OUT/bench-kl.log 2>&1
echo "bench exit $? after $(( $(date +%s) - t0 )) s"
cp $S/bench/bench.json $OUT/bench-kl.json; cp $S/bench/bench.html $OUT/bench-kl.html
python benchmarks/bench_table.py $S/bench/bench.json 2>&1 | head -3
