"""Reading the PTB-XL sample: a plain `wfdb.rdrecord` loop vs `CachedECGDataset` (cold build, warm load).

Run: `.venv/bin/python benchmarks/data.py [--root PATH] [--limit N] [--num-workers K]`.
Each variant runs in its own subprocess so its peak RSS is its own. Target: warm load >= 50x the loop.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_ROOT = Path(os.environ.get("ECGMETA_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")) / "ptbxl"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_variant(variant: str, root: Path, cache_dir: Path, limit: int, num_workers: int) -> dict:
    """Time one variant in this process; returns records, seconds, peak RSS (MiB)."""
    import numpy as np  # noqa: F401
    import pandas as pd
    db_csv = pd.read_csv(root / "ptbxl_database.csv")
    files = db_csv.filename_lr.tolist()[: limit or None]
    if variant == "rdrecord":
        import wfdb
    else:  # torch only where it is used, so each peak RSS is its own
        from ecgmeta.cache import CachedECGDataset
        from ecgmeta.data import PTBXL
        db = PTBXL(root)  # the metadata table is loaded outside the timing, as the file list of the loop is
    t0 = time.perf_counter()
    if variant == "rdrecord":
        total = 0.0
        for f in files:
            rec = wfdb.rdrecord(str(root / f))
            total += float(rec.p_signal[0, 0])  # touch the data
        n = len(files)
    else:
        ids = db.ids[: limit or None]
        ds = CachedECGDataset(db, cache_dir, ids=ids, progress=False, num_workers=num_workers)
        if variant == "cold" and not ds.built: raise RuntimeError("cold run found an existing cache")
        if variant == "warm" and ds.built: raise RuntimeError("warm run had to build")
        s = 0.0
        for a in range(0, len(ds), 512):  # touch every sample once (page in the memmap)
            s += float(np.asarray(ds.signals[a:a + 512]).sum())
        n = len(ds)
    dt = time.perf_counter() - t0
    return dict(variant=variant, records=n, seconds=dt, rps=n / dt, peak_rss_mb=_peak_rss_mb())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="PTB-XL root")
    ap.add_argument("--limit", type=int, default=0, help="first N records only (0: all)")
    ap.add_argument("--num-workers", type=int, default=0, help="worker processes for the cold build")
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    ap.add_argument("--cache-dir", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.variant:  # child process
        print(json.dumps(run_variant(a.variant, a.root, a.cache_dir, a.limit, a.num_workers)))
        return 0
    import pandas as pd
    for f in pd.read_csv(a.root / "ptbxl_database.csv").filename_lr.tolist()[: a.limit or None]:
        for ext in (".hea", ".dat"): (a.root / (f + ext)).read_bytes()  # warm the page cache for every variant
    rows = []
    with tempfile.TemporaryDirectory(prefix="ecgmeta-bench-") as tmp:
        for v in ("rdrecord", "cold", "warm"):
            out = subprocess.run([sys.executable, __file__, "--variant", v, "--root", str(a.root), "--cache-dir", tmp,
                                  "--limit", str(a.limit), "--num-workers", str(a.num_workers)],
                                 capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = rows[0]["seconds"]
    print(f"PTB-XL sample at {a.root}, 100 Hz, {rows[0]['records']} records "
          f"(cache: PreprocessConfig() = 100 Hz, 10 s, 0.5-40 Hz band-pass, z-score; num_workers={a.num_workers})")
    print(f"{'variant':<28}{'records':>8}{'seconds':>10}{'records/s':>12}{'peak RSS MiB':>14}{'speed-up':>10}")
    names = {"rdrecord": "wfdb.rdrecord loop", "cold": "cached: cold build", "warm": "cached: warm load + touch"}
    for r in rows:
        print(f"{names[r['variant']]:<28}{r['records']:>8}{r['seconds']:>10.3f}{r['rps']:>12.0f}"
              f"{r['peak_rss_mb']:>14.0f}{base / r['seconds']:>9.1f}x")
    warm = base / rows[2]["seconds"]
    print(f"warm load is {warm:.0f}x the rdrecord loop (target >= 50x): {'OK' if warm >= 50 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
