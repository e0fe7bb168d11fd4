set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
t0=$(date +%s)
timeout 200 python -m pytest -q -p no:cacheprovider tests/test_expert_gpu.py -k "conv" > $OUT/pytest-gpu-conv.log 2>&1
echo "pytest exit $? after $(( $(date +%s) - t0 )) s"; tail -3 $OUT/pytest-gpu-conv.log
S=$PWD/.bench-state/s9i
rm -rf $S
BENCH_SECONDS=200 bash benchmarks/expert_suite_gpu.sh $S 4 conv_pointwise_1x1 > $OUT/bench-1x1.log 2>&1
echo "bench exit $? after $(( $(date +%s) - t0 )) s"
cp $S/bench/bench.json $OUT/bench-1x1.json; cp $S/bench/bench.html $OUT/bench-1x1.html
python benchmarks/bench_table.py $S/bench/bench.json 2>&1 | head -6
