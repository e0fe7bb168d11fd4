set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python -c "import torch, triton; print(torch.__version__, triton.__version__, torch.version.cuda)"
timeout 560 python .bench-state/explore14.py softmax_vocab,softmax_log_softmax,norm_groupnorm,norm_instancenorm > $OUT/explore14.log 2>&1
echo "explore14 exit $?"; grep -E "SOL|ERROR|Error|==" $OUT/explore14.log | cut -c1-170
