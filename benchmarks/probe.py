"""Linear probe vs supervised CNN: feature-extraction throughput, probe fit time, CNN training time, ratios.

Run: .venv/bin/python benchmarks/probe.py [--data ../shared/data/ptbxl] [--encoder NAME_OR_PATH] [--cnn-epochs 3]
Each phase runs in its own process so its peak RSS is its own. Real PTB-XL sample records, 12 leads, 10 s, 100 Hz.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _setup(data, cache, max_records):
    import numpy as np
    from ecgmeta.data import PTBXL
    from ecgmeta.probe import _select_ids
    db = PTBXL(data)
    ids = _select_ids(db, max_records, 0)
    lab = db.labels("superclass")
    return db, ids, np.concatenate([ids["train"], ids["val"], ids["test"]]), {s: lab.loc[v].to_numpy() for s, v in ids.items()}


def _peak_mb(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def phase_features(data, cache, encoder, max_records, batch_size):
    "Encode every selected record with the frozen encoder (12 leads); save features for the probe phase."
    import numpy as np
    import torch
    from ecgmeta.cache import CachedECGDataset
    from ecgmeta.encoder import ECGEncoder, ECGEncoderConfig
    from ecgmeta.probe import encoder_preprocess, extract_features
    db, ids, all_ids, _ = _setup(data, cache, max_records)
    if encoder: enc = ECGEncoder.from_pretrained(encoder)
    else:
        torch.manual_seed(0); enc = ECGEncoder(ECGEncoderConfig())
    ds = CachedECGDataset(db, cache, encoder_preprocess(enc), ids=all_ids, progress=False)  # what the encoder expects
    extract_features(enc, ds, all_ids[:batch_size], batch_size=batch_size, progress=False)  # warm-up
    t = time.perf_counter(); c = time.process_time()
    X = extract_features(enc, ds, all_ids, batch_size=batch_size, progress=False)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    np.save(Path(cache) / "bench_features.npy", X)
    return dict(phase="encoder features (frozen, b%d)" % batch_size, n=len(all_ids), wall_s=wall, cpu_s=cpu,
                per_s=len(all_ids) / wall, peak_mb=_peak_mb(), params=sum(p.numel() for p in enc.parameters()))


def phase_probe(data, cache, max_records):
    "Fit the linear probe (5 C values, selection on fold 9) on the saved features, 100% labels."
    import numpy as np
    from ecgmeta.probe import fit_linear_probe
    db, ids, all_ids, Y = _setup(data, cache, max_records)
    X = np.load(Path(cache) / "bench_features.npy")
    tr, va = np.split(X, [len(ids["train"]), len(ids["train"]) + len(ids["val"])])[:2]
    t = time.perf_counter(); c = time.process_time()
    p = fit_linear_probe(tr, Y["train"], va, Y["val"])
    return dict(phase="linear probe fit (5 C, 100% labels)", n=len(tr), wall_s=time.perf_counter() - t,
                cpu_s=time.process_time() - c, per_s=len(tr) / (time.perf_counter() - t), peak_mb=_peak_mb(),
                val_auroc=p.val_auroc)


def phase_cnn(data, cache, max_records, epochs):
    "Train the supervised ResNet-1D from scratch for `epochs` epochs on 100% labels (no early stop)."
    from ecgmeta.cache import CachedECGDataset
    from ecgmeta.preprocess import PreprocessConfig
    from ecgmeta.probe import CNNConfig, train_cnn
    db, ids, all_ids, Y = _setup(data, cache, max_records)
    raw = CachedECGDataset(db, cache, PreprocessConfig(normalize=None), ids=all_ids, progress=False)
    xtr, xva = raw.batch(ids["train"])[0].numpy(), raw.batch(ids["val"])[0].numpy()
    s = float(xtr.std())
    t = time.perf_counter(); c = time.process_time()
    fit = train_cnn(xtr / s, Y["train"], xva / s, Y["val"], raw.fs,
                    CNNConfig(max_epochs=epochs, patience=epochs + 1, max_cpu_seconds=1e9), progress=False)
    wall = time.perf_counter() - t
    return dict(phase=f"supervised CNN training ({epochs} epochs)", n=len(xtr), wall_s=wall,
                cpu_s=time.process_time() - c, per_s=len(xtr) * epochs / wall, peak_mb=_peak_mb(),
                val_auroc=fit.val_auroc, epoch_s=wall / fit.epochs)


def _run(fn, *args):
    with mp.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        return pool.apply(fn, args)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "ptbxl"))
    p.add_argument("--cache-dir", default="/tmp/ecgmeta-cache")
    p.add_argument("--encoder", default=None, help="checkpoint name/path (default: shipped if present, else random init)")
    p.add_argument("--max-records", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--cnn-epochs", type=int, default=3)
    p.add_argument("--cnn-full-epochs", type=int, default=12, help="epochs of a full CNN fit, for the extrapolated ratio")
    a = p.parse_args(argv)
    enc = a.encoder
    if enc is None:
        from ecgmeta.encoder import resolve_checkpoint
        try: resolve_checkpoint("ecg-encoder-ptbxl-small"); enc = "ecg-encoder-ptbxl-small"
        except Exception: enc = ""
    Path(a.cache_dir).mkdir(parents=True, exist_ok=True)
    rows = [_run(phase_features, a.data, a.cache_dir, enc, a.max_records, a.batch_size),
            _run(phase_probe, a.data, a.cache_dir, a.max_records),
            _run(phase_cnn, a.data, a.cache_dir, a.max_records, a.cnn_epochs)]
    print(f"encoder: {enc or 'random init (no shipped checkpoint)'}; {rows[0]['params'] / 1e6:.2f}M parameters; "
          f"torch threads: {__import__('torch').get_num_threads()}")
    print(f"{'phase':42s} {'records':>7s} {'wall s':>8s} {'cpu s':>8s} {'rec/s':>8s} {'peak MB':>8s}")
    for r in rows:
        print(f"{r['phase']:42s} {r['n']:7d} {r['wall_s']:8.2f} {r['cpu_s']:8.2f} {r['per_s']:8.1f} {r['peak_mb']:8.0f}")
    probe_total = rows[0]["wall_s"] + rows[1]["wall_s"]
    cnn_full = rows[2]["epoch_s"] * a.cnn_full_epochs
    print(f"\nCNN epoch {rows[2]['epoch_s']:.1f} s; a {a.cnn_full_epochs}-epoch CNN fit ~{cnn_full:.0f} s")
    print(f"ratio CNN {a.cnn_epochs}-epoch training / (features + probe fit): {rows[2]['wall_s'] / probe_total:.1f}x")
    print(f"ratio CNN {a.cnn_full_epochs}-epoch fit (extrapolated) / (features + probe fit): {cnn_full / probe_total:.1f}x")
    print(f"ratio CNN {a.cnn_epochs}-epoch training / probe fit alone: {rows[2]['wall_s'] / rows[1]['wall_s']:.0f}x")
    print("(wall times on a shared machine; compare ratios from one run)")


if __name__ == "__main__":
    main()
