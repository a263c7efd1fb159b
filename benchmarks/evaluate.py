"""Evaluation throughput: episodes/s with cached frozen-encoder features vs recomputing the encoder per episode.

Run: `.venv/bin/python benchmarks/evaluate.py [--episodes 12] [--llm]`. 5-way 5-shot 2-query contrastive
episodes over the generated meta-test classes of the sample data. Without `--llm` the methods are the
prototypical network and the majority baseline (where the encoder is the whole cost); with `--llm` a tiny
random LLaMA adds the `meta` method (adaptation + candidate scoring), as a stand-in for the LLM's share.
The encoder is the shipped `ecg-encoder-ptbxl-small` when present, else a default-size random `ECGEncoder`.
"""
from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import torch

from ecgmeta.cache import CachedECGDataset
from ecgmeta.data import PTBXL
from ecgmeta.encoder import ECGEncoder, ECGEncoderConfig, load_pretrained_encoder
from ecgmeta.episodes import build_classes, split_classes
from ecgmeta.evaluate import BASELINE_METHODS, ConditionFeatures, EvalConfig, LLMMethods, run_methods
from ecgmeta.qa import generate_questions


def _encoder():
    try: return load_pretrained_encoder(), "ecg-encoder-ptbxl-small"
    except Exception:
        torch.manual_seed(0)
        return ECGEncoder(ECGEncoderConfig()).eval(), "random ECGEncoder (default size)"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(episodes: int, llm: bool, data: Path):
    ptbxl = PTBXL(data / "ptbxl")
    items = [i for i in generate_questions(ptbxl) if i.question_type.startswith("single")]
    classes, _ = build_classes(items, min_items=10)
    test = split_classes(classes, ptbxl, by="template").test
    ids = sorted({e for c in test for it in c.items for e in it.ecg_ids})
    tmp = tempfile.TemporaryDirectory()
    ds = CachedECGDataset(ptbxl, Path(tmp.name), ids=ids, progress=False)
    enc, enc_name = _encoder()
    cfg = EvalConfig(n_way=(5,), k_shot=(5,), q_query=2, episodes=max(1, episodes // 3), progress=False,
                     methods=("protonet", "majority") + (("meta",) if llm else ()))
    methods = dict(BASELINE_METHODS)
    if llm:
        from ecgmeta.fusion import ECGLanguageModel, ECGLMConfig, make_fusion
        from ecgmeta.llm import tiny_llm
        from ecgmeta.meta import MetaConfig
        lm, tok = tiny_llm("llama")
        model = ECGLanguageModel(lm, tok, enc, make_fusion("resampler", enc.config.hidden_size, lm, n_queries=4, d_hidden=32),
                                 ECGLMConfig(llm_name="tiny-llama"))
        methods["meta"] = LLMMethods(model, MetaConfig(inner_steps=1), cfg).meta
    rows = []
    # (a) cached: every ECG encoded once up front, all episodes reuse the features
    feats = ConditionFeatures(enc, ds)
    t0 = time.perf_counter()
    for s in range(0, len(ids), 64): feats.tokens(ids[s:s + 64])
    t_enc = time.perf_counter() - t0
    t0 = time.perf_counter(); res = run_methods(methods, test, feats, cfg); t_a = time.perf_counter() - t0
    n_a = res.records.episode.nunique()
    rows.append(("cached features (encode once)", n_a, t_a, t_enc))
    # (b) recompute: a fresh feature store per episode, so the encoder runs on every episode's ECGs
    wrapped = {}
    def fresh(m):
        def f(ctx):
            if ctx.cache.get("_fresh") is None:
                ctx.features.caches.clear(); ctx.cache["_fresh"] = True
            return m(ctx)
        return f
    for k, m in methods.items(): wrapped[k] = fresh(m)
    feats_b = ConditionFeatures(enc, ds)
    t0 = time.perf_counter(); res_b = run_methods(wrapped, test, feats_b, cfg); t_b = time.perf_counter() - t0
    rows.append(("recompute encoder per episode", res_b.records.episode.nunique(), t_b, feats_b.encode_seconds))
    print(f"encoder: {enc_name}; methods: {', '.join(methods)}; 5-way 5-shot 2-query; torch threads {torch.get_num_threads()}")
    print(f"{'setting':34s} {'episodes':>8s} {'seconds':>8s} {'episodes/s':>10s} {'encoder s':>9s}")
    for name, n, t, te in rows:
        print(f"{name:34s} {n:8d} {t:8.2f} {n / t:10.2f} {te:9.2f}")
    print(f"(cached run: {t_enc:.2f} s to encode all {len(ids)} meta-test ECGs once, not included above)")
    print(f"ratio cached / recompute: {(rows[0][1] / rows[0][2]) / (rows[1][1] / rows[1][2]):.1f}x episodes/s; peak RSS {_rss_mb():.0f} MB")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=12, help="episodes in total (split over the 3 question types)")
    ap.add_argument("--llm", action="store_true", help="add the meta method with a tiny random LLaMA")
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("ECGMETA_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")))
    a = ap.parse_args()
    run(a.episodes, a.llm, a.data)
