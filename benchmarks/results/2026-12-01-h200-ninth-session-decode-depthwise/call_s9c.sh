set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
t0=$(date +%s)
timeout 200 python .bench-state/explore21.py > $OUT/explore21.log 2>&1
echo "explore21 exit $? after $(( $(date +%s) - t0 )) s"; grep -E "SOL|ERROR|Error|==|copy|plain|Trace" $OUT/explore21.log | cut -c1-400
timeout 150 python -m pytest -q -p no:cacheprovider tests/test_expert_gpu.py -k "decode" > $OUT/pytest-gpu-decode.log 2>&1
echo "pytest exit $? after $(( $(date +%s) - t0 )) s"; tail -3 $OUT/pytest-gpu-decode.log
S=$PWD/.bench-state/s9c
rm -rf $S
left=$(( 560 - ($(date +%s) - t0) ))
BENCH_SECONDS=$(( left < 240 ? left : 240 )) bash benchmarks/expert_suite_gpu.sh $S 4 attention_llama3_decode > $OUT/bench-decode.log 2>&1
echo "bench exit $? after $(( $(date +%s) - t0 )) s"
cp $S/bench/bench.json $OUT/bench-decode.json; cp $S/bench/bench.html $OUT/bench-decode.html
python benchmarks/bench_table.py $S/bench/bench.json 2>&1 | head -6
