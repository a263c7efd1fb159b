"""Can the frozen LLM use an ECG position at all? An upper bound for any fusion module.

For contrastive 5-way meta-val episodes (the locked meta-test split is left to the final report) of one question type, the ECG position of each query is filled with
(a) the LLM's own embedding of the gold answer ("oracle": what a perfect fusion could emit), (b) the embedding of
a wrong candidate ("anti-oracle") and (c) a zero vector ("blank": no information). Candidates are scored as in
`ecgmeta evaluate` (summed log-likelihood of each candidate answer). If the oracle row is near 100 % and the
anti-oracle near 0 %, the LLM reads the ECG position and the bottleneck is the fusion's mapping from ECG
features to that position, not the LLM.

Run: `.venv/bin/python benchmarks/oracle_ecg_token.py [--episodes 6] [--types single-verify,single-choose]`
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--episodes", type=int, default=6)
    ap.add_argument("--types", default="single-verify,single-choose,single-query")
    args = ap.parse_args()
    import numpy as np
    import torch
    from ecgmeta.evaluate import draw_episodes, episode_candidates, question_sets, score_shared_prefix
    from ecgmeta.fusion import ECGFusion
    from ecgmeta.trainer import MetaTrainConfig, build_model

    class FixedEmbedding(ECGFusion):
        "A fusion module that emits the embeddings it is given (one position per ECG)."
        def forward(self, tokens, token_mask=None): return tokens

    for qt in args.types.split(","):
        tc = MetaTrainConfig(data_dir=args.data, question_types=(qt,), fusion="resampler", fusion_tokens=1, min_items=10)
        model = build_model(tc)
        model.fusion.__class__ = FixedEmbedding
        tok, E = model.tokenizer, model.llm.get_input_embeddings().weight.detach()
        sets, _ = question_sets(Path(args.data), tc, ecgqa=False, min_items=7)
        res, t0 = {"oracle": [], "anti-oracle": [], "blank": []}, time.perf_counter()
        for ep in draw_episodes(next(iter(sets.values())), 5, 5, 5, args.episodes, seed=0):
            cands, q = episode_candidates(ep), ep.query
            gold = [it.answer_text for it in q]
            def emb(a): return E[tok(a[:1].upper() + a[1:], add_special_tokens=False).input_ids].mean(0)
            for mode in res:
                if mode == "oracle": e = torch.stack([emb(g) for g in gold])
                elif mode == "anti-oracle": e = torch.stack([emb(next(c for c in cands if c != g)) for g in gold])
                else: e = torch.zeros(len(q), E.shape[1])
                sc = score_shared_prefix(model, [it.question for it in q], [1] * len(q), cands, e[:, None])
                res[mode].append(np.mean([cands[i] == g for i, g in zip(sc.argmax(1), gold)]))
        print(f"{qt}: " + ", ".join(f"{k} {100 * np.mean(v):.1f} %" for k, v in res.items())
              + f" ({len(res['blank'])} episodes, {time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
