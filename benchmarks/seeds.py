"""The demo's recipe over several class splits and training seeds, with both bootstraps.

One demo run rests on one class split and one training seed; this script repeats the recipe of
`ecgmeta/configs/demo.json` over `--split-seeds` x `--train-seeds` (default 3 x 2). The split seed draws the
generated questions and the meta-train/val/test class split (`MetaTrainConfig.split_seed`), the training seed
the model initialisation and the meta-training episodes. Each run meta-trains for the config's fixed number
of meta-steps and evaluates a fixed number of 5-way 5-shot episodes per question type, so the figures do not
depend on the machine.

It prints, on queries that need the ECG (text-answerable ones left out, as in the demo):
- accuracy per run, question type and method;
- mean and standard deviation over runs (the spread a reader should expect from one demo run);
- `meta` minus each control pooled over all runs, with a paired bootstrap over episodes and one over distinct
  questions (the wider, more honest one when few distinct questions exist);
- time per run, the evaluation's throughput (queries per second) and peak memory, and the `protonet` baseline's
  cost beside `meta` (the obvious alternative without an LLM).

The default split is **meta-val** (fold-9 ECGs): recipe choices are made there. `--split test` evaluates the
locked meta-test classes, for a final report only. `--set train.descriptors=true` (repeatable) overrides a demo
setting, to re-check a choice of the recipe on meta-val.

Run: `.venv/bin/python benchmarks/seeds.py [--split val] [--split-seeds 0,1,2] [--train-seeds 0,1] [--episodes 12]`
"""
from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from dataclasses import replace
from pathlib import Path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--split", choices=("val", "test"), default="val", help="meta-val (default: design choices) or the locked meta-test")
    ap.add_argument("--split-seeds", default="0,1,2")
    ap.add_argument("--train-seeds", default="0,1")
    ap.add_argument("--episodes", type=int, default=12, help="5-way 5-shot episodes per question type and run")
    ap.add_argument("--methods", default="meta,majority,random_ecg,constant_ecg,protonet")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override the demo config, e.g. train.descriptors=true")
    ap.add_argument("--out", default=None, help="folder for the runs and all records (default: a temporary folder)")
    ap.add_argument("--n-boot", type=int, default=2000)
    args = ap.parse_args()
    import numpy as np
    import pandas as pd
    import torch
    from ecgmeta.evaluate import DemoConfig, _default_demo_config, compare_methods, run_demo
    from ecgmeta.trainer import apply_overrides

    torch.set_num_threads(2)
    raw = json.loads(_default_demo_config().read_text())
    apply_overrides(raw, args.set)
    out = Path(args.out or tempfile.mkdtemp(prefix="ecgmeta-seeds-"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "demo_config.json").write_text(json.dumps(raw, indent=1))
    base = DemoConfig.load(out / "demo_config.json")
    ev = replace(base.eval, n_way=(5,), k_shot=(5,), episodes=args.episodes, conditions=(), methods=tuple(args.methods.split(",")),
                 sparse_methods=(), n_boot=args.n_boot)
    recs, runs = [], []
    for ss in (int(x) for x in args.split_seeds.split(",")):
        for ts in (int(x) for x in args.train_seeds.split(",")):
            cfg = replace(base, train={**base.train, "seed": ts, "split_seed": ss}, eval=ev, ecgqa=False)
            t0 = time.perf_counter()
            res = run_demo(Path(args.data), out / f"split{ss}-train{ts}", budget_minutes=60, config=cfg, progress=False, split=args.split)
            secs = time.perf_counter() - t0
            r = next(iter(res["results"].values()))
            recs.append(r.records.assign(split_seed=ss, train_seed=ts, run=f"{ss}/{ts}"))
            runs.append(dict(run=f"{ss}/{ts}", seconds=secs, queries_per_s_meta=len(r.records.query("method == 'meta'")) / max(r.seconds.get("meta", 1e-9), 1e-9),
                             protonet_s=r.seconds.get("protonet", 0.0), meta_s=r.seconds.get("meta", 0.0)))
            print(f"run split seed {ss}, train seed {ts}: {secs / 60:.1f} min", flush=True)
            for msg in r.skipped: print(f"  not evaluated: {msg}", flush=True)
            missing = sorted(set(ev.question_types or cfg.train.get("question_types") or []) - set(r.records.question_type))
            if missing: print(f"  no {', '.join(missing)} classes in this split: those types are missing from this run", flush=True)
    allr = pd.concat(recs, ignore_index=True)
    allr.to_csv(out / "records.csv", index=False)
    need = allr[~allr.text_answerable.astype(bool)].copy()
    need["episode"] = need["run"] + "|" + need["episode"]  # episodes of different runs are different clusters

    per_run = need.groupby(["run", "question_type", "method"]).correct.mean().mul(100).unstack("method")
    pd.set_option("display.width", 160)
    print(f"\n{args.split} split, {len(runs)} runs (split seeds {args.split_seeds} x training seeds {args.train_seeds}), "
          f"{args.episodes} episodes per type and run; accuracy % on ECG-needed queries:")
    print(per_run.round(1).to_string())
    agg = per_run.groupby("question_type").agg(["mean", "std"]).round(1)
    print("\nmean and standard deviation over runs:")
    print(agg.to_string())
    rows = []
    for cluster in ("episode", "question"):
        c = compare_methods(need, "meta", [b for b in ("majority", "random_ecg", "constant_ecg", "protonet") if b in set(need.method)],
                            by=("question_type",), n_boot=args.n_boot, cluster=cluster)
        c["cluster"] = cluster
        rows.append(c)
    cmp = pd.concat(rows)
    cmp["diff_ci"] = [f"{100 * d:+.1f} [{100 * l:+.1f}, {100 * h:+.1f}]" for d, l, h in zip(cmp["diff"], cmp.ci_low, cmp.ci_high)]
    print("\nmeta minus baseline, pooled over runs (paired bootstrap over episodes, and over distinct questions):")
    print(cmp.pivot_table(index=["question_type", "baseline"], columns="cluster", values="diff_ci", aggfunc="first").to_string())
    n_q = need.drop_duplicates(["run", "episode", "query"]).groupby("question_type").question.nunique()
    print("\ndistinct questions per type (over all runs):", n_q.to_dict())
    ta = allr.drop_duplicates(["run", "episode", "query"]).groupby("question_type").text_answerable.agg(["sum", "size"])
    print("text-answerable queries left out:", {k: f"{int(v['sum'])} of {int(v['size'])}" for k, v in ta.iterrows()})
    rt = pd.DataFrame(runs)
    print(f"\ntime per run {rt.seconds.mean() / 60:.1f} min (sd {rt.seconds.std() / 60:.1f}); meta answers "
          f"{rt.queries_per_s_meta.mean():.2f} queries/s; protonet takes {rt.protonet_s.sum() / max(rt.meta_s.sum(), 1e-9):.3f}x "
          f"meta's time; peak memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GB")
    (out / "summary.json").write_text(json.dumps({"per_run": per_run.reset_index().to_dict(orient="records"),
                                                  "compare": cmp.drop(columns=["diff_ci"]).to_dict(orient="records"),
                                                  "runs": runs, "split": args.split, "overrides": args.set}, indent=1, default=str))
    print(f"records and summary in {out}")


if __name__ == "__main__":
    main()
