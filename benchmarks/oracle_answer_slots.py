"""How much can a `proto` fusion pass to the frozen LLM? The ECG positions filled with one answer's tokens.

For contrastive 5-way 5-shot meta-test episodes of each question type, a `proto` fusion (8 positions per ECG)
is made to put all its weight on (a) the gold answer of each query's question ("oracle": a perfect classifier),
(b) another candidate answer of the same question ("anti-oracle"), or (c) spread it evenly over the question's
candidate answers ("uniform": what an ECG-blind fusion gives). Candidates are scored as `ecgmeta evaluate`
does (summed log-likelihood). The oracle row bounds what any classifier behind the fusion can reach through
this LLM and prompt; the gap between oracle and uniform is how strongly the LLM follows the ECG positions.
It prints the rows for each output scale given (the fusion's `out_scale`; 1 = the LLM's own embedding size) and
each extra scale of single-token answers (`one_token_scale`: "yes", "no", "none" are one token followed by zero
positions, and SmolLM2 under-reads them at scale 1), each prompt layout (`--prompts`) and each length bonus
(`EvalConfig.length_bonus`: nats added per answer token before the arg-max; summed likelihood alone favours the
one-token "none").

Run: `.venv/bin/python benchmarks/oracle_answer_slots.py [--episodes 8] [--scales 1,2] [--one-token-scales 1,2]
[--length-bonuses 0,1] [--seed 3]`
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--episodes", type=int, default=8)
    ap.add_argument("--scales", default="1,2")
    ap.add_argument("--one-token-scales", default="1,2")
    ap.add_argument("--split", default="train", choices=("train", "test"),
                    help="classes to draw episodes from: meta-train and meta-val (for design choices) or meta-test")
    ap.add_argument("--prompts", default="{q}",
                    help="'|'-separated prompt layouts to compare: {q} is the question, <ecg> where the ECG positions go "
                         "(none: after the question, what ecgmeta does by default), e.g. '{q}|{q}\\nECG findings: <ecg>'")
    ap.add_argument("--seed", type=int, default=3, help="episode seed")
    ap.add_argument("--length-bonuses", default="0",
                    help="comma-separated nats added per answer token when scoring (EvalConfig.length_bonus; the demo uses 1)")
    ap.add_argument("--types", default="single-verify,single-choose,single-query")
    args = ap.parse_args()
    import numpy as np
    import torch
    from ecgmeta.episodes import question_key
    from ecgmeta.evaluate import (ConditionFeatures, _dataset_for, answer_lengths, draw_episodes, episode_candidates,
                                  question_sets, score_shared_prefix)
    from ecgmeta.trainer import MetaTrainConfig, build_data, build_model, episode_slots

    types, bonuses = args.types.split(","), [float(b) for b in args.length_bonuses.split(",")]
    tc = MetaTrainConfig(data_dir=args.data, question_types=tuple(types), fusion="proto", fusion_tokens=8, min_items=10)
    model = build_model(tc)
    if args.split == "test":
        sets, ptbxl = question_sets(Path(args.data), tc, ecgqa=False, min_items=7, split="test")
        classes, ds = next(iter(sets.values())), _dataset_for(sets, ptbxl, tc, False, model.encoder)
    else:
        data = build_data(tc)
        classes, ds = list(data.train + data.val), data.dataset
    feats = ConditionFeatures(model.encoder, ds)
    fusion, mode = model.fusion, {}
    learned = fusion.answer_probs

    def forced(h, groups, slot_mask):  # replaces the classifier: one-hot on a chosen slot, or the uniform mixture
        p = learned(h, groups, slot_mask)  # zero fast weights: uniform over each question's answers
        if mode["kind"] == "uniform": return p
        return torch.nn.functional.one_hot(mode["slot"], p.shape[1]).to(p.dtype)
    fusion.answer_probs = forced
    grid = [(float(s), float(o), p.replace("\\n", "\n")) for s in args.scales.split(",")
            for o in args.one_token_scales.split(",") for p in args.prompts.split("|")]
    for scale, one, layout in grid:
        with torch.no_grad(): fusion.log_scale.fill_(math.log(scale))
        fusion.config.one_token_scale = one
        for qt in types:
            res, t0 = {(k, b): [] for b in bonuses for k in ("oracle", "anti-oracle", "uniform")}, time.perf_counter()
            for ep in draw_episodes([c for c in classes if c.question_type == qt], 5, 5, 2, args.episodes, seed=args.seed, contrastive=True):
                slots, q, cands = episode_slots(ep), ep.query, episode_candidates(ep)
                keys = [question_key(it) for it in q]
                gold = [slots.slot(k, it.answer_text) for k, it in zip(keys, q)]
                anti = [next((a for a in range(len(slots.answers[slots.group(k)])) if a != g), g) for k, g in zip(keys, gold)]
                f = feats.tokens([e for it in q for e in it.ecg_ids])
                for kind, slot in (("oracle", gold), ("anti-oracle", anti), ("uniform", gold)):
                    mode.update(kind=kind, slot=torch.tensor(slot))
                    sc = score_shared_prefix(model, [layout.format(q=it.question) for it in q], [1] * len(q), cands, f, slots, keys)
                    n_tok = answer_lengths(model, cands)[None]
                    for b in bonuses:
                        pick = (sc + b * n_tok).argmax(1)
                        res[kind, b].append(np.mean([cands[i] == it.answer_text for i, it in zip(pick, q)]))
            for b in bonuses:
                print(f"scale {scale:g}, one-token scale {one:g}, prompt {layout!r}, length bonus {b:g}, {qt}: "
                      + ", ".join(f"{k} {100 * np.mean(res[k, b]):.1f} %" for k in ("oracle", "anti-oracle", "uniform"))
                      + f" ({len(res['uniform', b])} episodes, {time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
