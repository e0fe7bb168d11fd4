set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
timeout 150 python .bench-state/explore13.py > $OUT/explore13.log 2>&1
echo "explore13 exit $?"; cat $OUT/explore13.log | tail -12
