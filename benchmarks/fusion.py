"""Fusion benchmark: SmolLM2-135M (offline) + ECG fusion on CPU.

Forward+backward time and peak memory for a 5-way 5-shot support set (25 examples), and greedy generation
tokens/s, for three ways of putting an ECG into the prompt:

- `pooled-1`: one pooled ECG vector per ECG (the reference implementation's single ECG token),
- `resampler-8`: 8 learned-query tokens per ECG,
- `tokens-20`: the encoder's full token sequence (20 tokens for 10 s at 100 Hz) through the LLaVA MLP.

Each variant runs in its own process; peak memory is the largest RSS sampled during the passes minus the RSS
before the first one (activations and gradients, not the LLM's weights). Encoder features are precomputed once
(frozen encoder, as in meta-training). Run: `.venv/bin/python benchmarks/fusion.py [--reps 3]`.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import statistics
import threading
import time


def _rss_mb() -> float:
    with open("/proc/self/statm") as f: return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _run(variant: str, reps: int, n_way: int, k_shot: int, gen_tokens: int, q) -> None:
    import torch
    from ecgmeta.encoder import ECGEncoder, ECGEncoderConfig
    from ecgmeta.fusion import ECGLanguageModel, ECGLMConfig, make_fusion
    from ecgmeta.llm import load_llm

    torch.manual_seed(0)
    llm, tok = load_llm("smollm2-135m")
    enc = ECGEncoder(ECGEncoderConfig()).eval()  # default width 192, random weights (timing only)
    d = enc.config.hidden_size
    if variant == "pooled-1": fu, cfg = make_fusion("mlp", d, llm), ECGLMConfig("smollm2-135m", pooled=True)
    elif variant == "resampler-8": fu, cfg = make_fusion("resampler", d, llm, n_queries=8), ECGLMConfig("smollm2-135m")
    else: fu, cfg = make_fusion("mlp", d, llm, n_tokens=20), ECGLMConfig("smollm2-135m")
    m = ECGLanguageModel(llm, tok, enc, fu, cfg)
    kinds = ["baseline drift", "static noise", "burst noise", "electrode problems", "an extra beat"]
    qs = [f"Does this ECG show {kinds[c % len(kinds)]}?" for c in range(n_way) for _ in range(k_shot)]
    ans = ["yes" if (i % 2) else "no" for i in range(len(qs))]
    sig = torch.randn(len(qs), 12, 1000, generator=torch.Generator().manual_seed(0))
    feats = m.encode_ecgs(sig)  # cached features: the frozen encoder runs once
    b = m.build_batch(qs, 1, ans)
    params = m.trainable_parameters()

    def step():
        loss = torch.func.functional_call(m, params, (b,), {"ecg_features": feats}).loss
        torch.autograd.grad(loss, list(params.values()))

    base, peak, stop = _rss_mb(), [0.0], threading.Event()

    def sample():  # RSS sampled every 2 ms: the peak above the resting process (weights, features loaded)
        while not stop.is_set(): peak[0] = max(peak[0], _rss_mb()); time.sleep(0.002)

    th = threading.Thread(target=sample, daemon=True); th.start()
    step()  # warm-up (the first pass allocates the most; freed memory stays in the process afterwards)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter(); step(); times.append(time.perf_counter() - t0)
    stop.set(); th.join()
    peak = peak[0] - base
    t0 = time.perf_counter()
    out = m.generate(qs[:n_way], 1, ecg_features=feats[:n_way], max_new_tokens=gen_tokens)
    dt = time.perf_counter() - t0
    n_gen = sum(min(gen_tokens, len(tok(o, add_special_tokens=False).input_ids) + 1) for o in out)
    q.put(dict(variant=variant, seq_len=b.input_ids.shape[1], ecg_pos=m.n_ecg_tokens, fwd_bwd_s=statistics.median(times),
               peak_mb=max(peak, 0.0), gen_tok_s=n_gen / dt, trainable=sum(p.numel() for p in params.values())))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=2, help="timed forward+backward repetitions (after one warm-up)")
    ap.add_argument("--n-way", type=int, default=5)
    ap.add_argument("--k-shot", type=int, default=5)
    ap.add_argument("--gen-tokens", type=int, default=16, help="max new tokens per generated answer")
    args = ap.parse_args(argv)
    ctx = mp.get_context("spawn")
    rows = []
    for v in ("pooled-1", "resampler-8", "tokens-20"):
        q = ctx.Queue()
        p = ctx.Process(target=_run, args=(v, args.reps, args.n_way, args.k_shot, args.gen_tokens, q))
        p.start(); rows.append(q.get()); p.join()
    ref = rows[0]
    n = args.n_way * args.k_shot
    print(f"SmolLM2-135M on CPU, {args.n_way}-way {args.k_shot}-shot support set ({n} examples), "
          f"median of {args.reps} forward+backward passes over the trainable parameters; "
          f"load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    hdr = f"{'variant':<12} {'ECG pos':>7} {'seq len':>7} {'trainable':>10} {'fwd+bwd s':>9} {'x pooled':>8} " \
          f"{'peak MB':>8} {'x pooled':>8} {'gen tok/s':>9} {'x pooled':>8}"
    print(hdr); print("-" * len(hdr))
    for r in rows:
        print(f"{r['variant']:<12} {r['ecg_pos']:>7} {r['seq_len']:>7} {r['trainable']:>10,} {r['fwd_bwd_s']:>9.2f} "
              f"{r['fwd_bwd_s'] / ref['fwd_bwd_s']:>8.2f} {r['peak_mb']:>8.0f} "
              f"{r['peak_mb'] / max(ref['peak_mb'], 1e-9):>8.2f} {r['gen_tok_s']:>9.1f} "
              f"{r['gen_tok_s'] / ref['gen_tok_s']:>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
