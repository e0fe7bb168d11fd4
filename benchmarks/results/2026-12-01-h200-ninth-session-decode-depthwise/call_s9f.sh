set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
t0=$(date +%s)
timeout 150 python -m pytest -q -p no:cacheprovider tests/test_expert_gpu.py -k "depthwise" > $OUT/pytest-gpu-depthwise.log 2>&1
echo "pytest exit $? after $(( $(date +%s) - t0 )) s"; tail -3 $OUT/pytest-gpu-depthwise.log
S=$PWD/.bench-state/s9f
rm -rf $S
BENCH_SECONDS=200 bash benchmarks/expert_suite_gpu.sh $S 4 conv_depthwise_mobilenetv2 > $OUT/bench-depthwise.log 2>&1
echo "bench exit $? after $(( $(date +%s) - t0 )) s"
cp $S/bench/bench.json $OUT/bench-depthwise.json; cp $S/bench/bench.html $OUT/bench-depthwise.html
python benchmarks/bench_table.py $S/bench/bench.json 2>&1 | head -6
