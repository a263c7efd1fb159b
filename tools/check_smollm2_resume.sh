#!/usr/bin/env bash
# Resume-exactness and 2-process check of `ecgmeta meta-train` with the real SmolLM2 (about 2-3 min on 2 idle cores).
# A: uninterrupted 3 meta-steps; B: SIGKILL after the step-1 checkpoint, then resume; C: --num-processes 2.
# Prints whether A and B have identical metrics and the largest weight difference of B and C against A.
set -u
cd "$(dirname "$0")/.."
B=.venv/bin/ecgmeta
COMMON="meta-train --config meta_smollm2 --data ../shared/data --no-progress --meta-steps 3 --set n_way=2 --set k_shot=2 --set q_query=2 --set meta.inner_steps=2 --set meta.tasks_per_batch=2 --set val_every=2 --set val_episodes=2 --set checkpoint_every=1"
rm -rf /tmp/sr; mkdir -p /tmp/sr
t0=$(date +%s)
$B $COMMON --out /tmp/sr/A > /tmp/sr/A.log 2>&1; echo "A rc=$? $(( $(date +%s)-t0 ))s"
t0=$(date +%s)
$B $COMMON --out /tmp/sr/B > /tmp/sr/B1.log 2>&1 &
pid=$!
while [ ! -e /tmp/sr/B/checkpoints/step-000001 ] && kill -0 $pid 2>/dev/null; do sleep 0.5; done
sleep 1; kill -9 $pid; echo "killed B after: $(ls /tmp/sr/B/checkpoints)"
$B $COMMON --out /tmp/sr/B > /tmp/sr/B2.log 2>&1; echo "B resumed rc=$? $(( $(date +%s)-t0 ))s"
t0=$(date +%s)
$B $COMMON --out /tmp/sr/C --num-processes 2 > /tmp/sr/C.log 2>&1; echo "C (2 procs) rc=$? $(( $(date +%s)-t0 ))s"
.venv/bin/python - <<'PY'
from pathlib import Path
import json
from safetensors.torch import load_file
def rows(p): return [json.loads(l) for l in Path(p).read_text().splitlines() if l.strip()]
strip = lambda rs: [{k: v for k, v in r.items() if k not in ("time", "seconds", "elapsed", "wall_s", "step_s")} for r in rs]
a, b, c = (strip(rows(f"/tmp/sr/{x}/metrics.jsonl")) for x in "ABC")
print("A == B (metrics, timing fields removed):", a == b)
print("last A:", a[-1]); print("last B:", b[-1]); print("last C:", c[-1])
wa, wb, wc = (load_file(f"/tmp/sr/{x}/checkpoints/step-000003/weights.safetensors") for x in "ABC")
print("A vs B max abs diff:", max((wa[k] - wb[k]).abs().max().item() for k in wa))
print("A vs C max abs diff:", max((wa[k] - wc[k]).abs().max().item() for k in wa))
PY
