set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
t0=$(date +%s)
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python -c "import torch, triton; print(torch.__version__, triton.__version__, torch.version.cuda)"
timeout 240 python .bench-state/soft_check.py triton.softmax_cooperative softmax_vocab,softmax_log_softmax \
  "((4096,4),(2048,4),(2048,2),(8192,8),(4096,8),(8192,4))" > $OUT/soft_check.log 2>&1
echo "soft_check exit $? after $(( $(date +%s) - t0 )) s"
timeout 60 python .bench-state/soft_check.py triton.norm_cooperative norm_instancenorm "((4096,4),)" > $OUT/norm_check.log 2>&1
echo "norm_check exit $? after $(( $(date +%s) - t0 )) s"
left=$(( 570 - ($(date +%s) - t0) ))
timeout $left python -m pytest -q -p no:cacheprovider tests/test_expert_gpu.py -k "softmax or cooperative or instancenorm or groupnorm" > $OUT/pytest_gpu.log 2>&1
echo "pytest exit $? after $(( $(date +%s) - t0 )) s"; tail -5 $OUT/pytest_gpu.log
