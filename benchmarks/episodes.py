"""Episodes per second: 5-way 5-shot 5-query, sampled and collated from the memmapped cache, against reading
each episode's records with wfdb. Run: `.venv/bin/python benchmarks/episodes.py [--data DIR] [--episodes N]`."""
import argparse
import logging
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import wfdb

from ecgmeta.cache import CachedECGDataset
from ecgmeta.data import PTBXL
from ecgmeta.episodes import EpisodeSampler, build_classes, split_classes
from ecgmeta.qa import generate_questions


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    here = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("ECGMETA_DATA", here.parent / "shared" / "data")))
    ap.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "ecgmeta-bench-cache")
    ap.add_argument("--episodes", type=int, default=1000)
    ap.add_argument("--naive-episodes", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    logging.basicConfig(level=logging.WARNING)
    ptbxl = PTBXL(a.data / "ptbxl")
    classes, _ = build_classes(generate_questions(ptbxl, seed=0), min_items=10)
    splits = split_classes(classes, ptbxl, seed=0)
    t0 = time.perf_counter()
    ds = CachedECGDataset(ptbxl, a.cache_dir, ids=ptbxl.split_ids("train"), progress=False)
    t_cache = time.perf_counter() - t0
    rows = []

    smp = EpisodeSampler(splits.train, 5, 5, 5, seed=0)
    t0 = time.perf_counter()
    for _ in range(a.episodes): smp.sample()
    dt = time.perf_counter() - t0
    rows.append(("sample only (no tensors)", a.episodes, a.episodes / dt, 1e3 * dt / a.episodes))

    smp = EpisodeSampler(splits.train, 5, 5, 5, seed=0)
    n_ecgs = []
    t0 = time.perf_counter()
    for _ in range(a.episodes):
        b = smp.sample().collate(ds)
        n_ecgs.append(b.signals.shape[0])
    dt_cache = time.perf_counter() - t0
    rows.append(("sample + collate (memmap cache)", a.episodes, a.episodes / dt_cache, 1e3 * dt_cache / a.episodes))

    smp = EpisodeSampler(splits.train, 5, 5, 5, seed=0)
    t0 = time.perf_counter()
    for _ in range(a.naive_episodes):
        ep = smp.sample()
        ids = list(dict.fromkeys(e for it in ep.support + ep.query for e in it.ecg_ids))
        sig = np.stack([wfdb.rdrecord(str(ptbxl.root / ptbxl.db.at[e, "filename_lr"])).p_signal.T for e in ids])
        torch.from_numpy(sig.astype(np.float32))
    dt_naive = time.perf_counter() - t0
    rows.append(("sample + wfdb.rdrecord per episode", a.naive_episodes, a.naive_episodes / dt_naive, 1e3 * dt_naive / a.naive_episodes))

    print(f"5-way 5-shot 5-query over {len(splits.train)} meta-train classes, {np.mean(n_ecgs):.1f} distinct ECGs per episode, "
          f"{a.threads} torch threads; cache ready in {t_cache:.1f} s ({ds.path})")
    print(f"{'method':38s} {'episodes':>8s} {'episodes/s':>11s} {'ms/episode':>11s}")
    for name, n, eps, ms in rows: print(f"{name:38s} {n:8d} {eps:11.1f} {ms:11.2f}")
    print(f"speed-up of the cache over wfdb: {rows[1][2] / rows[2][2]:.0f}x; target >= 200 episodes/s: "
          f"{'met' if rows[1][2] >= 200 else 'NOT met'}; peak RSS {_rss_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
