"""Model selection for encoder pretraining on the validation fold only: short pretraining, then a fold-9 linear probe.

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/pretrain_select.py --config CONFIG.json --steps 300 \
        --data ../shared/data/ptbxl --work /tmp/select [--encoder NAME_OR_PATH]

Pretrains `CONFIG.json` (a `PretrainConfig` as JSON) for `--steps` steps on folds 1-8 (or loads `--encoder` and skips
training), then fits the linear probe of `ecgmeta.probe` on folds 1-8 (100% labels) and reports the macro AUROC on
**fold 9 only** (the fold that selects C) for the pretrained and the random-init encoder, with mean-pooled features
and with mean+max-pooled tokens. Fold 10 is never read: use `ecgmeta probe` for the final choice only.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def token_features(enc, ds, ids, batch_size=128):
    "Mean- and max-pooled tokens `(n, D)` each, frozen encoder, all recorded leads."
    enc.eval()
    mean, mx = [], []
    with torch.inference_mode():
        for a in range(0, len(ids), batch_size):
            x, m = ds.batch(ids[a:a + batch_size])
            t = enc(x.masked_fill(~m[:, :, None], 0.0), lead_mask=m, fs=ds.fs).tokens.float()
            mean.append(t.mean(1).numpy()); mx.append(t.amax(1).numpy())
    return np.concatenate(mean), np.concatenate(mx)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=None, help="PretrainConfig JSON (ignored with --encoder)")
    ap.add_argument("--encoder", default=None, help="evaluate this checkpoint instead of pretraining")
    ap.add_argument("--steps", type=int, default=None, help="override steps")
    ap.add_argument("--data", required=True, help="PTB-XL root")
    ap.add_argument("--work", required=True, help="folder for caches and runs")
    ap.add_argument("--name", default=None, help="run sub-folder (default: config file stem + steps)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from ecgmeta.cache import CachedECGDataset
    from ecgmeta.data import PTBXL
    from ecgmeta.encoder import ECGEncoder
    from ecgmeta.pretrain import PretrainConfig, PretrainData, load_pretrain_data, pretrain
    from ecgmeta.probe import _random_like, _select_ids, encoder_preprocess, fit_linear_probe
    work = Path(a.work); work.mkdir(parents=True, exist_ok=True)
    db = PTBXL(Path(a.data))
    t0 = time.perf_counter()
    if a.encoder:
        enc, name, train_s = ECGEncoder.from_pretrained(a.encoder), Path(a.encoder).name, 0.0
    else:
        d = json.loads(Path(a.config).read_text())
        if a.steps: d["steps"] = a.steps
        config = PretrainConfig.from_dict(d)
        name = a.name or f"{Path(a.config).stem}-{config.steps}"
        pdir = work / f"pdata-{config.preprocess.key()}-{'text' if 'text' in config.objectives else 'notext'}"
        if (pdir / "signals.npy").is_file():
            data = PretrainData.load(pdir)
        else:
            data = load_pretrain_data(db.root, config, work / "cache", progress=False)
            data.save(pdir)
            data = PretrainData.load(pdir)
        t1 = time.perf_counter()
        enc = pretrain(config, data, work / name, progress=False)
        train_s = time.perf_counter() - t1
    ids = _select_ids(db, None, 0)
    lab = db.labels("superclass")
    Y = {s: lab.loc[ids[s]].to_numpy().astype(int) for s in ("train", "val")}
    ds = CachedECGDataset(db, work / "cache", encoder_preprocess(enc), ids=np.concatenate([ids["train"], ids["val"]]),
                          progress=False)
    rows = {}
    for kind, e in (("pretrained", enc), ("random", _random_like(enc, 0))):
        F = {s: token_features(e, ds, ids[s]) for s in ("train", "val")}
        for pool, f in (("mean", lambda s: F[s][0]), ("mean+max", lambda s: np.concatenate(F[s], 1))):
            p = fit_linear_probe(f("train"), Y["train"], f("val"), Y["val"])
            rows[f"{kind}/{pool}"] = (round(p.val_auroc, 4), p.C)
    out = dict(name=name, train_s=round(train_s, 1), total_s=round(time.perf_counter() - t0, 1), fold9=rows)
    print(json.dumps(out))
    with open(work / "select.jsonl", "a") as f: f.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
