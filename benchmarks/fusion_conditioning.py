"""How well does a few-shot inner loop adapt each fusion kind? SmolLM2-135M (offline), frozen, on CPU.

For contrastive 5-way 5-shot meta-val episodes (the locked meta-test split is left to the final report) (classes that ask the same question with different answers),
starting from a freshly initialised fusion module, take plain gradient steps on the support loss (the MAML
inner loop) at several learning rates and print, per fusion kind and rate:

- the support loss before and after each step (a well-conditioned inner loop makes it fall step by step),
- the query accuracy after adaptation with the episode's real ECGs and with the queries' ECGs shuffled
  (a gap means the adapted model reads the ECG),
- the seconds per inner step (prompt prefixes are cached, as in meta-training).

The obvious alternative is the `resampler` (learned queries cross-attending to the encoder tokens, a free
vector per ECG position); `anchored` mixes the LLM's own answer-token embeddings. Input standardisation of
`anchored` is fitted on meta-train ECGs, as `meta_train` does. `proto` mixes the token embeddings of the
candidate answers of each ECG's question with a classifier initialised from the support prototypes (Proto-MAML):
its step 0 is already the prototypical network read through the LLM.

Run: `.venv/bin/python benchmarks/fusion_conditioning.py [--episodes 3] [--steps 3] [--question-type single-verify]`
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--episodes", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--question-type", default="single-verify")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--kinds", default="resampler,anchored,proto", help="fusion kinds to compare (comma-separated)")
    args = ap.parse_args()
    import numpy as np
    import torch
    torch.set_num_threads(args.threads)
    from ecgmeta.evaluate import (_dataset_for, draw_episodes, episode_candidates, question_sets, score_shared_prefix)
    from ecgmeta.meta import FeatureCache
    from ecgmeta.trainer import MetaTrainConfig, build_data, build_model, make_loss_fn, prepare_task, use_params

    grids = {"resampler": [1e-4, 1e-2, 1.0], "anchored": [10.0, 30.0, 100.0], "proto": [0.3, 1.0, 3.0]}
    rows = []
    for kind, lrs in ((k, grids[k]) for k in args.kinds.split(",")):
        tc = MetaTrainConfig(data_dir=args.data, question_types=(args.question_type,), fusion=kind,
                             fusion_tokens={"anchored": 1, "proto": 8}.get(kind, 4), min_items=10)
        model = build_model(tc)
        sets, ptbxl = question_sets(Path(args.data), tc, ecgqa=False, min_items=7)
        classes = next(iter(sets.values()))
        ds = _dataset_for(sets, ptbxl, tc, False, model.encoder)
        fc = FeatureCache(lambda x, m: model.encoder(x, m).tokens)
        if kind == "anchored":  # as meta_train does: standardise with meta-train ECGs
            data = build_data(tc)
            ids = sorted({e for c in data.train for it in c.items for e in it.ecg_ids})[:600]
            x, m = data.dataset.batch(ids)
            with torch.no_grad(): model.fusion.fit_input_stats(model.encoder(x.float(), m.bool()).tokens)
        loss_fn = make_loss_fn()
        for ep in draw_episodes(classes, 5, 5, 5, args.episodes, seed=0, contrastive=True):
            ids = sorted({e for it in ep.support + ep.query for e in it.ecg_ids})
            x, m = ds.batch(ids)
            fc.add(ids, x.float(), m.bool())
            task = prepare_task(model, ep, ds, fc)
            cands, gold = episode_candidates(ep), [it.answer_text for it in ep.query]
            slots = task.support.slots  # None except for "proto"
            keys = None if slots is None else task.query_items.keys
            qf = fc.get([e for it in ep.query for e in it.ecg_ids])
            qs, ns = [it.question for it in ep.query], [it.n_ecgs for it in ep.query]
            base = {n: p.detach().clone() for n, p in model.trainable_parameters().items()}
            for lr in lrs:
                p = {n: v.clone().requires_grad_() for n, v in base.items()}
                p = {n: v.detach().requires_grad_() for n, v in model.episode_params(p, task.support.batch, task.support.features).items()}
                losses, t0 = [], time.perf_counter()
                for _ in range(args.steps):
                    loss = loss_fn(model, p, task.support)
                    losses.append(loss.item())
                    g = torch.autograd.grad(loss, list(p.values()))
                    p = {n: (v - lr * gi).detach().requires_grad_() for (n, v), gi in zip(p.items(), g)}
                step_s = (time.perf_counter() - t0) / args.steps
                losses.append(loss_fn(model, p, task.support).item())
                with use_params(model, p), torch.no_grad():
                    acc = np.mean([cands[i] == g for i, g in zip(score_shared_prefix(model, qs, ns, cands, qf, slots, keys).argmax(1), gold)])
                    perm = torch.as_tensor(np.roll(np.arange(len(qf)), 1))
                    acc_s = np.mean([cands[i] == g for i, g in zip(score_shared_prefix(model, qs, ns, cands, qf[perm], slots, keys).argmax(1), gold)])
                rows.append(dict(fusion=kind, lr=lr, episode=ep.index, first=losses[0], last=losses[-1],
                                 max_jump=max(b - a for a, b in zip(losses, losses[1:])), monotone=all(b <= a + 1e-6 for a, b in zip(losses, losses[1:])),
                                 acc=acc, acc_shuffled=acc_s, step_s=step_s))
                print(f"{kind:9s} lr {lr:<8g} episode {ep.index}: support loss {' -> '.join(f'{v:.2f}' for v in losses)}; "
                      f"query accuracy {acc:.2f} (shuffled ECGs {acc_s:.2f}); {step_s:.2f} s/step", flush=True)
    import pandas as pd
    df = pd.DataFrame(rows)
    summ = df.groupby(["fusion", "lr"]).agg(support_first=("first", "mean"), support_last=("last", "mean"),
                                            worst_step_increase=("max_jump", "max"), monotone_share=("monotone", "mean"),
                                            acc=("acc", "mean"), acc_shuffled=("acc_shuffled", "mean"), s_per_step=("step_s", "mean"))
    print("\n" + summ.round(3).to_string())
    r = summ["s_per_step"]
    for k in (k for k in ("anchored", "proto") if k in r.index and "resampler" in r.index):
        print(f"seconds per inner step, {k} / resampler: {r.xs(k).mean() / r.xs('resampler').mean():.2f}")


if __name__ == "__main__":
    main()
