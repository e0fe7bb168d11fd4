set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
t0=$(date +%s)
timeout 100 python .bench-state/explore24.py > $OUT/explore24b.log 2>&1
echo "explore24 exit $? after $(( $(date +%s) - t0 )) s"; grep -E "ERROR|Error|Trace|template|dw_tile" $OUT/explore24b.log | cut -c1-200
timeout 150 python -m pytest -q -p no:cacheprovider tests/test_expert_gpu.py -k "depthwise or decode" > $OUT/pytest-gpu-s9h.log 2>&1
echo "pytest exit $? after $(( $(date +%s) - t0 )) s"; tail -3 $OUT/pytest-gpu-s9h.log
S=$PWD/.bench-state/s9h
rm -rf $S
BENCH_SECONDS=200 bash benchmarks/expert_suite_gpu.sh $S 4 conv_depthwise_mobilenetv2 > $OUT/bench-depthwise2.log 2>&1
echo "bench exit $? after $(( $(date +%s) - t0 )) s"
cp $S/bench/bench.json $OUT/bench-depthwise2.json; cp $S/bench/bench.html $OUT/bench-depthwise2.html
python benchmarks/bench_table.py $S/bench/bench.json 2>&1 | head -6
