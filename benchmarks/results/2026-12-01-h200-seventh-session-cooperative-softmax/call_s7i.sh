set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
t0=$(date +%s)
timeout 240 python -m kernelwright optimize examples/tasks/masked_softmax.py --budget 6 --out $OUT/ms-gpu --db $OUT/ms-gpu.db > $OUT/optimize-masked-softmax-gpu.log 2>&1
echo "optimize exit $? after $(( $(date +%s) - t0 )) s"
grep -E "passed|failed|answer|wall time|stopped|vs compile" $OUT/optimize-masked-softmax-gpu.log | tail -20
rm -f $OUT/ms-gpu.db*
