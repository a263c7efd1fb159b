"""How far can any classifier on the frozen encoder separate a query's own ECG from a random one?

The demo's `proto` fusion puts the answer a per-question classifier picks into SmolLM2's prompt, and the LLM
copies it (on single-verify the meta-trained model scores what the prototypical network scores). So the gap
between the `meta` method and the `random_ecg` control is bounded by the same gap for the classifier alone.
This script measures that bound without the LLM, on the demo's meta-test episodes (contrastive 5-way 5-shot,
2 queries per class, the same episode seeds as `ecgmeta demo`, as many episodes per type as asked):

- classifiers, each restricted to the classes that ask the query's question: nearest prototype (what the
  fusion starts from), ridge regression on the support (the closed-form head of Bertinetto et al. 2019) and
  1-nearest neighbour;
- features: the encoder's mean-pooled tokens, raw or centred on the meta-train ECGs (what the fusion uses),
  then unit length; with the demo's signal descriptors (`descriptors: true` in demo.json) those follow, each scaled by
  the square root of its per-question weight from the support (`ecgmeta.descriptors.descriptor_weights`), as the fusion
  and the protonet baseline weigh them (`--no-descriptors`: the encoder alone);
- the query read with its own ECG and with another query's ECG of the episode (the `random_ecg` derangement).

It prints accuracy with the own ECG, with a random ECG and the difference per question type, the
classification throughput (queries per second), and the encoder's cost for the features (once per ECG).

`--split val` measures on meta-val classes (fold 9 ECGs), where choices such as the encoder should be made;
`--encoder` compares another encoder; `--by-family` breaks the centred prototype head down by template family.

Run: `.venv/bin/python benchmarks/classifier_ceiling.py [--episodes 60] [--split val] [--encoder DIR] [--by-family]`
"""
from __future__ import annotations

import argparse
import resource
import time
from collections import defaultdict
from pathlib import Path


def own_vs_random(episodes, emb, pick, own: bool, seed: int = 0, key=lambda it: it.question_type):
    """Accuracy (%) per `key(item)` of a classifier read with each query's own ECG (`own`) or another query's ECG of the
    episode (the `random_ecg` derangement), and queries per second. `emb(ecg_ids) -> (n, d)` vectors;
    `pick(X, y, q, ok) -> index into ok` answers one query from the support vectors `X` and labels `y` of the classes
    `ok` that ask its question."""
    import numpy as np
    import torch
    from ecgmeta.episodes import question_key
    from ecgmeta.evaluate import _derangement
    rng, acc, n, t = np.random.default_rng(seed), defaultdict(list), 0, time.perf_counter()
    for ep in episodes:
        s, q = emb([it.ecg_ids[0] for it in ep.support]), emb([it.ecg_ids[0] for it in ep.query])
        if not own: q = q[torch.as_tensor(_derangement(len(q), rng))]
        lab = torch.as_tensor(ep.support_labels)
        for i, it in enumerate(ep.query):
            ok = [c for c, cls in enumerate(ep.classes) if question_key(cls) == question_key(it)]
            m = torch.isin(lab, torch.tensor(ok))
            choice = ok[pick(s[m], lab[m], q[i], ok)] if len(ok) > 1 else ok[0]
            acc[key(it)].append(float(choice == ep.query_labels[i])); n += 1
    return {k: 100 * float(np.mean(v)) for k, v in sorted(acc.items())}, n / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--episodes", type=int, default=60, help="episodes per question type")
    ap.add_argument("--ridge-lambda", type=float, default=1.0)
    ap.add_argument("--encoder", default=None, help="encoder name or folder (default: the demo's)")
    ap.add_argument("--split", choices=("val", "test"), default="val",
                    help="meta-val classes (fold 9 ECGs, the default: make choices here) or meta-test classes (fold 10; the locked test split)")
    ap.add_argument("--by-family", action="store_true", help="also print the centred prototype head per template family")
    ap.add_argument("--no-descriptors", action="store_true", help="the encoder alone, even where the demo appends descriptors")
    args = ap.parse_args()
    import numpy as np
    import torch
    import torch.nn.functional as F
    from ecgmeta.evaluate import ConditionFeatures, DemoConfig, _dataset_for, _plan, question_sets
    from ecgmeta.descriptors import distance_weights
    from ecgmeta.trainer import build_data, build_model, config_from_dict, fit_run_descriptors

    torch.set_num_threads(2)
    demo = DemoConfig.load()
    tc = config_from_dict({**demo.train, "data_dir": args.data, **({"encoder": args.encoder} if args.encoder else {}),
                           **({"descriptors": False} if args.no_descriptors else {})})
    t0 = time.perf_counter()
    train = build_data(tc)
    enc = build_model(tc, descriptor_stats=fit_run_descriptors(train) if tc.descriptors else None).encoder  # as the demo builds it
    n_desc = enc.config.n_descriptors
    feats_train = ConditionFeatures(enc, train.dataset)
    if args.split == "val": test, feats = train.val, feats_train
    else:
        sets, ptbxl = question_sets(Path(args.data), tc, ecgqa=False, min_items=7, split="test")
        test, feats = next(iter(sets.values())), ConditionFeatures(enc, _dataset_for(sets, ptbxl, tc, False, enc))
    pooled = lambda fc, ids: torch.cat([fc.pooled(ids[s:s + 256]) for s in range(0, len(ids), 256)])
    test_ids = sorted({e for c in test for it in c.items for e in it.ecg_ids})
    train_ids = sorted({e for c in train.train for it in c.items for e in it.ecg_ids})
    P, centre = pooled(feats, test_ids), pooled(feats_train, train_ids).mean(0)
    centre[P.shape[1] - n_desc:] = 0  # descriptors are standardised already and weighted per question below
    enc_s = time.perf_counter() - t0
    row = {e: i for i, e in enumerate(test_ids)}
    cfg = demo.eval.__class__(n_way=(5,), k_shot=(5,), q_query=demo.eval.q_query, episodes=args.episodes,
                              contrastive=True, seed=demo.eval.seed, progress=False)
    episodes = [job[-1] for job in _plan(test, cfg)[0]]
    print(f"{len(episodes)} meta-{args.split} episodes, {len(test_ids)} + {len(train_ids)} ECGs encoded in {enc_s:.1f} s")

    def scores(kind, X, y, q, ok):  # (len(ok),) scores of query vector q against support X (labels y in ok)
        if kind == "prototype":
            return -torch.cdist(q[None], torch.stack([X[y == c].mean(0) for c in ok]))[0]
        if kind == "ridge":
            Y = F.one_hot(torch.as_tensor([ok.index(int(v)) for v in y]), len(ok)).float()
            W = X.T @ torch.linalg.solve(X @ X.T + args.ridge_lambda * torch.eye(len(X)), Y - Y.mean(0))
            return q @ W
        d = torch.cdist(q[None], X)[0]  # 1-NN
        return torch.stack([-d[y == c].min() for c in ok])

    def run(kind, centred, own, key=lambda it: it.question_type):
        def emb(ids):
            v = P[[row[e] for e in ids]] - (centre if centred else 0)
            return torch.cat([F.normalize(v[:, :v.shape[1] - n_desc], dim=-1), v[:, v.shape[1] - n_desc:]], -1)
        def pick(X, y, q, ok):  # columns scaled by the square root of their per-question distance weight
            sc = distance_weights(X, y, torch.arange(X.shape[1]) >= X.shape[1] - n_desc).sqrt()
            return int(scores(kind, X * sc, y, q * sc, ok).argmax())
        return own_vs_random(episodes, emb, pick, own, key=key)

    types = sorted({it.question_type for ep in episodes for it in ep.query})
    print(f"{'classifier':>10} {'features':>8} | " + " | ".join(f"{t:>26}" for t in types))
    print(f"{'':>10} {'':>8} | " + " | ".join(f"{'own / random ECG, diff':>26}" for _ in types))
    for kind in ("prototype", "ridge", "1-NN"):
        for centred in (False, True):
            a, qps = run(kind, centred, True)
            r, _ = run(kind, centred, False)
            cells = " | ".join(f"{a[t]:5.1f} / {r[t]:5.1f}, {a[t] - r[t]:+5.1f}".rjust(26) for t in sorted(a))
            print(f"{kind:>10} {'centred' if centred else 'raw':>8} | {cells}   ({qps:,.0f} queries/s)")
    if args.by_family:
        from ecgmeta.qa import TEMPLATES
        fam = lambda it: f"{it.question_type} {TEMPLATES[it.template_id].family}"
        a, _ = run("prototype", True, True, key=fam)
        r, _ = run("prototype", True, False, key=fam)
        for k in a: print(f"  prototype, centred, {k:>32}: {a[k]:5.1f} / {r[k]:5.1f}, {a[k] - r[k]:+5.1f}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
