"""Multimodal and robust encoder objectives vs the plain encoder, on PTB-XL fold 10.

Run: `.venv/bin/python benchmarks/multimodal.py [--data ../shared/data/ptbxl] [--out DIR] [--steps 60]`
(same as `ecgmeta multimodal benchmark --data ../shared/data/ptbxl --out DIR`). Trains five small encoders
(plain, ECG-text, tolerant, single-lead plain, single-lead self-aligned) for the same number of steps, then prints
the comparison table, the tolerance grid, training throughput and peak memory; writes multimodal.md/.json and
degradation.png into DIR.
"""
import argparse
import logging
import os
import resource
import time
from pathlib import Path

import torch

from ecgmeta.multimodal import BenchmarkConfig, MultimodalConfig, run_benchmark

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ECGMETA_DATA", ROOT.parent / "shared" / "data"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DATA / "ptbxl"), help="PTB-XL root")
    p.add_argument("--out", default="/tmp/ecgmeta-multimodal-bench", help="output folder")
    p.add_argument("--cache-dir", default=os.environ.get("ECGMETA_CACHE", "/tmp/ecgmeta-cache"), help="record cache")
    p.add_argument("--steps", type=int, default=MultimodalConfig.steps, help="optimiser steps per objective")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--max-train", type=int, default=0, help="cap the labelled training records (seeded subset; 0: all)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    cap = (a.max_train, 10**9, 10**9) if a.max_train else None
    config = BenchmarkConfig(train=MultimodalConfig(steps=a.steps), max_records=cap, probe_train=None if cap else 800)
    report = run_benchmark(Path(a.data), Path(a.cache_dir), config, out=Path(a.out), progress=False)
    paths = report.save(Path(a.out))
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(report.to_markdown())
    tm = report.meta["timing"]
    bs = config.train.batch_size
    print("\n| objective | train s | records/s | s/step |\n|---|---|---|---|")
    for k, v in tm.items():
        if k.startswith("train_"):
            n = k[len("train_"):-2]
            print(f"| {n} | {v:.1f} | {a.steps * bs / max(v, 1e-9):.1f} | {v / a.steps:.2f} |")
    print(f"\nevaluation: {', '.join(f'{k} {v:.0f} s' for k, v in tm.items() if k.startswith('eval_'))}")
    print(f"total {wall:.0f} s, peak RSS {peak:.0f} MiB, torch threads {a.threads}, "
          f"encoder parameters {report.meta['encoder_parameters']:,}")
    print(f"wrote {', '.join(str(v) for v in paths.values())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
