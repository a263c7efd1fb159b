"""Signal descriptors: speed and R-peak accuracy against wfdb's XQRS detector, and what they add to few-shot answers.

1. **R peaks** on MIT-BIH record 100 (30 min, 360 Hz, 2 leads) in 60 s windows: `ecgmeta.descriptors.r_peaks` against
   `wfdb.processing.xqrs_detect` (the obvious alternative, on lead MLII), sensitivity and positive predictive value within
   50 ms of the cardiologists' beat annotations, seconds and the speed ratio.
2. **Throughput** of `ecg_descriptors` on PTB-XL records (10 s, 12 leads, 100 Hz) against the shipped encoder's forward
   pass on the same batch (what the descriptors add to encoding), ECGs per second and peak memory.
3. **Prototype head with per-question descriptor weights** (`--select`, `--split`), as the demo's fusion and the
   protonet baseline use it: contrastive 5-way 5-shot episodes, accuracy with the query's own ECG and with another
   query's ECG, per question type and template family, for each `alpha` (0 = the encoder alone). `--split select`
   (default) uses meta-train classes of the rhythm, noise, heart-axis and other families plus the meta-val classes:
   where `DESCRIPTOR_ALPHA` was chosen. `--split test` measures on the demo's meta-test classes (a diagnostic; do not
   choose there).

Run: `.venv/bin/python benchmarks/descriptors.py [--select] [--split select|test] [--episodes 60] [--alphas 0,0.15,0.25,0.35]`
"""
from __future__ import annotations

import argparse
import resource
import time
from collections import defaultdict
from pathlib import Path


def rss_mb() -> float: return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_peaks(data: Path):
    import numpy as np
    import wfdb.processing
    from ecgmeta.data import read_annotations, read_record
    from ecgmeta.descriptors import r_peaks
    rec, ann = read_record(data / "mitbih" / "100"), read_annotations(data / "mitbih" / "100")
    x, fs = rec.signal[rec.mask].astype(np.float64), rec.fs
    beats = np.array([a.sample for a in ann if a.is_beat])
    W, tol = int(60 * fs), int(0.05 * fs)
    def score(found):
        found = np.asarray(found)
        sens = (np.abs(beats[:, None] - found[None]).min(1) <= tol).mean()
        ppv = (np.abs(found[:, None] - beats[None]).min(1) <= tol).mean()
        return sens, ppv
    t = time.perf_counter()
    ours = np.concatenate([r_peaks(x[:, s:s + W], fs) + s for s in range(0, x.shape[1], W)])
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    xq = np.concatenate([wfdb.processing.xqrs_detect(x[0, s:s + W], fs=fs, verbose=False) + s for s in range(0, x.shape[1], W)])
    t_xq = time.perf_counter() - t
    print(f"R peaks, MIT-BIH 100 ({len(beats)} annotated beats, {x.shape[1] / fs / 60:.0f} min in 60 s windows):")
    for name, f, sec in (("ecgmeta r_peaks (2 leads)", ours, t_ours), ("wfdb xqrs_detect (MLII)", xq, t_xq)):
        se, pp = score(f)
        print(f"  {name:26s} sensitivity {se:.4f}  PPV {pp:.4f}  {sec:6.2f} s  ({x.shape[1] / fs / 60 / sec:,.0f} min of ECG per s)")
    print(f"  speed ratio ecgmeta / wfdb: {t_xq / t_ours:.1f}x")


def bench_throughput(data: Path, n: int):
    import numpy as np
    import torch
    from ecgmeta.cache import CachedECGDataset
    from ecgmeta.data import PTBXL
    from ecgmeta.descriptors import ecg_descriptors
    from ecgmeta.encoder import load_pretrained_encoder
    from ecgmeta.llm import ecgmeta_cache_dir
    enc = load_pretrained_encoder("ecg-encoder-ptbxl-small")
    db = PTBXL(data / "ptbxl")
    ds = CachedECGDataset(db, ecgmeta_cache_dir() / "ecgs", enc.config.preprocess_config(), ids=list(db.ids[:n]), progress=False)
    x, m = ds.batch(list(db.ids[:n]))
    t = time.perf_counter(); d = ecg_descriptors(x, m, fs=ds.config.fs); t_d = time.perf_counter() - t
    with torch.no_grad():
        t = time.perf_counter()
        for s in range(0, n, 64): enc(x[s:s + 64].float(), m[s:s + 64].bool())
        t_e = time.perf_counter() - t
    print(f"\nthroughput on {n} PTB-XL ECGs (10 s, 12 leads, 100 Hz), {torch.get_num_threads()} threads:")
    print(f"  ecg_descriptors        {n / t_d:8.1f} ECGs/s  ({np.isfinite(d).all(1).mean():.1%} with every descriptor defined)")
    print(f"  encoder forward        {n / t_e:8.1f} ECGs/s")
    print(f"  descriptors cost {t_d / t_e:.2f}x the encoder's time; peak RSS {rss_mb():.0f} MB")


def bench_select(data: Path, split: str, episodes: int, alphas: list[float]):
    import numpy as np
    import torch
    from ecgmeta.descriptors import distance_weights
    from classifier_ceiling import own_vs_random  # the same own-vs-random ECG loop as the ceiling benchmark
    from ecgmeta.evaluate import ConditionFeatures, DemoConfig, _dataset_for, _plan, question_sets
    from ecgmeta.qa import TEMPLATES
    from ecgmeta.trainer import build_data, build_model, config_from_dict, fit_run_descriptors
    demo = DemoConfig.load()
    tc = config_from_dict({**demo.train, "data_dir": str(data), "descriptors": True})
    train = build_data(tc)
    enc = build_model(tc, descriptor_stats=fit_run_descriptors(train)).encoder  # statistics of meta-train ECGs only
    k = enc.config.n_descriptors
    if split == "test":
        sets, ptbxl = question_sets(data, tc, ecgqa=False, min_items=7, split="test")
        groups = {"meta-test": next(iter(sets.values()))}
        feats = ConditionFeatures(enc, _dataset_for(sets, ptbxl, tc, False, enc))
    else:
        groups = {"meta-train": train.train, "meta-val": train.val}
        feats = ConditionFeatures(enc, train.dataset)
    cfg = demo.eval.__class__(n_way=(5,), k_shot=(5,), q_query=demo.eval.q_query, episodes=episodes, contrastive=True,
                              seed=demo.eval.seed, progress=False)
    train_ids = sorted({e for c in train.train for it in c.items for e in it.ecg_ids})
    tr_feats = feats if split != "test" else ConditionFeatures(enc, train.dataset)
    centre = torch.cat([tr_feats.pooled(train_ids[s:s + 256]) for s in range(0, len(train_ids), 256)])[:, :-k].mean(0)
    def emb(ids):
        p = feats.pooled(ids)
        return torch.cat([torch.nn.functional.normalize(p[:, :-k] - centre, dim=-1), p[:, -k:]], -1)
    print(f"\nprototype head, contrastive 5-way 5-shot, {episodes} episodes per type; cells: own ECG / own - random ECG")
    fam = lambda it: f"{it.question_type.removeprefix('single-')} {TEMPLATES[it.template_id].family}"
    summary = defaultdict(list)
    for gname, classes in groups.items():
        episodes_ = [job[-1] for job in _plan(classes, cfg)[0]]
        for alpha in alphas:
            def pick(X, y, q, ok):  # nearest prototype under the per-question weighted squared distance
                w = distance_weights(X, y, torch.arange(X.shape[1]) >= X.shape[1] - k, alpha)
                protos = torch.stack([X[y == c].mean(0) for c in ok])
                return int((((q - protos) ** 2) * w).sum(-1).argmin())
            a, _ = own_vs_random(episodes_, emb, pick, True, key=fam)
            r, _ = own_vs_random(episodes_, emb, pick, False, key=fam)
            summary[alpha] += [(a[kk], a[kk] - r[kk]) for kk in a]
            print(f"  {gname:10s} alpha {alpha:4.2f} | " + "  ".join(f"{kk}: {a[kk]:.1f}/{a[kk] - r[kk]:+.1f}" for kk in sorted(a)))
    print("  mean over families (own accuracy, own - random):")
    for alpha, v in summary.items():
        print(f"    alpha {alpha:4.2f}: {np.mean([x for x, _ in v]):.2f}, {np.mean([y for _, y in v]):+.2f}")
    print(f"  peak RSS {rss_mb():.0f} MB")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--n", type=int, default=512, help="PTB-XL ECGs for the throughput comparison")
    ap.add_argument("--select", action="store_true", help="also run the prototype-head comparison over alphas")
    ap.add_argument("--split", choices=("select", "test"), default="select")
    ap.add_argument("--episodes", type=int, default=60)
    ap.add_argument("--alphas", default="0,0.15,0.25,0.35")
    args = ap.parse_args()
    import torch
    torch.set_num_threads(2)
    data = Path(args.data)
    bench_peaks(data)
    bench_throughput(data, args.n)
    if args.select: bench_select(data, args.split, args.episodes, [float(a) for a in args.alphas.split(",")])


if __name__ == "__main__":
    main()
