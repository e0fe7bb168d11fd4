set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
timeout 280 python .bench-state/explore18.py norm_groupnorm,norm_instancenorm,softmax_vocab,softmax_log_softmax > $OUT/explore18.log 2>&1
echo "explore18 exit $?"; grep -E "SOL|ERROR|Error|==" $OUT/explore18.log | cut -c1-150
