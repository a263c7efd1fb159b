#!/usr/bin/env bash
# Pretrain the ECG encoder on a CUDA machine (bf16 autocast) from a prepared, float16 PretrainData folder.
#
# Self-contained: needs only this repository, python3 with torch/transformers/numpy/pandas/safetensors/tqdm, and
# the data folder .gpu/ptbxl-f1-8 (PTB-XL strat_fold 1-8 at 100 Hz, preprocessed as the config's `preprocess`
# field says, signals float16, MiniLM text embeddings), written on a CPU machine by
#   ecgmeta pretrain --config ecgmeta/configs/pretrain_gpu.json --data ../shared/data/ptbxl --out /tmp/p \
#       --cache-dir /tmp/cache --save-data .gpu/ptbxl-f1-8
# Output: $OUT/run (metrics.jsonl, losses.png, encoder/) and $OUT/ecg-encoder-ptbxl-small (float16 encoder to ship).
# Usage (from the repo root): OUT=/some/dir bash benchmarks/pretrain_gpu.sh [extra ecgmeta pretrain flags, e.g. --steps 500]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-outputs/pretrain-gpu}"
DATA="${DATA:-.gpu/ptbxl-f1-8}"
CONFIG="${CONFIG:-ecgmeta/configs/pretrain_gpu.json}"
PY="${PY:-python3}"
mkdir -p "$OUT"
# ecgmeta.data imports wfdb at module level; a bare GPU image may lack it, and training from a PretrainData
# folder never reads WFDB files, so an empty stand-in module is enough there.
if [ -n "${FORCE_WFDB_STUB:-}" ] || ! "$PY" -c "import wfdb" 2>/dev/null; then
  mkdir -p /tmp/ecgmeta_stub && : > /tmp/ecgmeta_stub/wfdb.py
  export PYTHONPATH="/tmp/ecgmeta_stub${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
# Only the pretrain sub-command is registered (ecgmeta.cli would import every module, and their optional stacks).
"$PY" - pretrain \
  --config "$CONFIG" --data "$DATA" --out "$OUT/run" --device cuda --no-progress --no-resume \
  --export "$OUT/ecg-encoder-ptbxl-small" "$@" <<'PYEOF' 2>&1 | tee "$OUT/pretrain.log"
import argparse, logging, sys
from ecgmeta import pretrain
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
parser = argparse.ArgumentParser(prog="ecgmeta")
pretrain.register_cli(parser.add_subparsers(dest="command"))
args = parser.parse_args(sys.argv[1:])
sys.exit(args.func(args))
PYEOF
ls -la "$OUT/ecg-encoder-ptbxl-small"
