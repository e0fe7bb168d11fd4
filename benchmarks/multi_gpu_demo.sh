export PYTHONPATH=$PWD/src; nvidia-smi -L > $OUT/gpus.txt
mkdir -p /tmp/c; for f in examples/candidates/*.py; do for k in 1 2; do (cat $f; echo "# copy $k") > /tmp/c/${k}_$(basename $f); done; done
printf '[strategies.best-of-n]\nparallel = 6\ntarget_speedup = 0.0\n[stop]\ntarget_sol = 1.5\n' > /tmp/both.toml
(cat /tmp/both.toml; printf '[eval]\ngpus = [0]\n') > /tmp/one.toml
T=examples/tasks/swish_residual.py
TIMEFORMAT="%R s wall"
run() { echo $1; time (python -m kernelwright optimize $T -g scripted:/tmp/c -s best-of-n --budget 6 --config $2 --db $OUT/$1.db --out $OUT/$1 > $OUT/$1.log 2>&1); }
run warmup /tmp/both.toml; run one_gpu /tmp/one.toml; run two_gpus /tmp/both.toml
python - <<'P'
import sqlite3, json, os, collections
for name in ("warmup", "one_gpu", "two_gpus"):
    c = sqlite3.connect(os.environ["OUT"] + f"/{name}.db")
    rows = [json.loads(v) for (v,) in c.execute("select verdict from evaluations")]
    gpus = collections.Counter(str(r["environment"].get("gpu")) for r in rows)
    print(name, len(rows), "verdicts by gpu:", dict(gpus), [r["status"] for r in rows])
P
