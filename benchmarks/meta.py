"""Meta-step time and peak memory, 5-way 5-shot 5-query with SmolLM2-135M, in one run.

Variants (each in its own subprocess, so the peak RSS of one does not leak into the next):
  (a) ours: FOMAML, encoder features computed once and cached, functional_call over the fusion only,
      support/query in micro-batches of 5 examples (same gradients, one micro-batch's activations at a time),
      and the frozen prompt text before the ECGs run once per micro-batch: its key/value cache is reused on
      every inner step, so the LLM runs over the ECG positions, the end of the prompt and the answer only
      (`--no-prefix-cache` turns that off);
  (b) reference-style: encoder recomputed on every inner step, second-order MAML keeping the graph
      across steps, multi-step loss (query loss after every inner step), no caching;
  (c) the learn2learn backend (MAML first order wrapping only the fusion module), cached features.

    .venv/bin/python benchmarks/meta.py                       # a, c at 15 steps; b at 15 steps (long, ~16 GB!)
    .venv/bin/python benchmarks/meta.py --b-steps 2 4          # b at 2 and 4 steps, extrapolated to 15

Peak memory is `resource.getrusage(RUSAGE_SELF).ru_maxrss` of the subprocess (model included); on CUDA the
peak of `torch.cuda.max_memory_allocated` is reported too.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _episode(args):
    "Questions, answers and ECG signals of one 5-way 5-shot 5-query episode of meta-train classes."
    import numpy as np
    if args.episode and Path(args.episode).exists():
        z = np.load(args.episode, allow_pickle=False)
        return json.loads(str(z["meta"])), z["signals"], z["masks"]
    from ecgmeta.trainer import build_data, load_config
    from ecgmeta.episodes import EpisodeSampler
    cfg = load_config(None, [f"data_dir={args.data}", "max_classes=40", f"ecg_cache_dir={args.ecg_cache}"])
    data = build_data(cfg)
    ep = EpisodeSampler(data.train, n_way=5, k_shot=5, q_query=5, seed=0).sample()
    eb = ep.collate(data.dataset)
    flat = eb.ecg_ids.tolist()
    meta = dict(questions=eb.questions, answers=eb.answers, n_ecgs=eb.n_ecgs.tolist(),
                is_support=eb.is_support.tolist(), order=[[flat[s] for s in sl] for sl in eb.ecg_slots], ids=flat)
    if args.episode:
        np.savez(args.episode, meta=json.dumps(meta), signals=eb.signals.numpy(), masks=eb.masks.numpy())
    return meta, eb.signals.numpy(), eb.masks.numpy()


def _model(args, device, dtype):
    import torch
    from ecgmeta.encoder import ECGEncoder, ECGEncoderConfig, load_pretrained_encoder
    from ecgmeta.fusion import ECGFusion, ECGLanguageModel, ECGLMConfig, FusionConfig
    torch.manual_seed(0)
    attn = "eager" if args.variant == "b" else "sdpa"  # as the trainer: eager only where second order needs it
    if args.llm_config:  # SmolLM2's architecture with random weights (where the weights cannot travel)
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
        c = AutoConfig.from_pretrained(args.llm_config); c._attn_implementation = attn
        llm, tok = AutoModelForCausalLM.from_config(c).eval(), AutoTokenizer.from_pretrained(args.llm_config)
    else:
        from ecgmeta.llm import load_llm
        llm, tok = load_llm(args.llm, attn_implementation=attn)
    try: enc = load_pretrained_encoder(args.encoder)
    except Exception:  # no shipped checkpoint in this checkout: a randomly initialised encoder of the default size
        enc = ECGEncoder(ECGEncoderConfig()).eval()
    fusion = ECGFusion(FusionConfig(kind="resampler", d_enc=enc.config.hidden_size,
                                    d_llm=llm.get_input_embeddings().embedding_dim, n_queries=8))
    return ECGLanguageModel(llm, tok, enc, fusion, ECGLMConfig(llm_name=args.llm)).to(device)


def worker(args) -> dict:
    "Run one variant and return its timings (in this process)."
    import torch
    from torch.func import functional_call
    from ecgmeta.meta import FeatureCache, MetaConfig, MetaLearner
    from ecgmeta.trainer import PreparedBatch, PreparedTask, cache_prefixes, make_loss_fn, split_prepared
    if args.threads: torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = _model(args, device, args.dtype)
    meta, signals, masks = _episode(args)
    sig, msk = torch.from_numpy(signals), torch.from_numpy(masks)
    pos = {e: i for i, e in enumerate(meta["ids"])}
    t_enc = None
    halves = {}
    cache = None
    if args.variant in ("a", "c"):
        t = time.perf_counter()
        cache = FeatureCache(lambda s, m: model.encode_ecgs(s.to(device), m.to(device)).float(), device=device)
        cache.add(meta["ids"], sig, msk)
        t_enc = time.perf_counter() - t
    for name, flag in (("support", True), ("query", False)):
        idx = [i for i, s in enumerate(meta["is_support"]) if s == flag]
        qs, ans, n = [meta["questions"][i] for i in idx], [meta["answers"][i] for i in idx], [meta["n_ecgs"][i] for i in idx]
        order = [e for i in idx for e in meta["order"][i]]
        feats = cache.get(order) if cache is not None else None
        pb = PreparedBatch(model.build_batch(qs, n, ans).to(device), feats, qs, ans, n)
        pb.signals = sig[[pos[e] for e in order]].to(device)
        pb.masks = msk[[pos[e] for e in order]].to(device)
        halves[name] = pb
    task = PreparedTask(halves["support"], halves["query"], (), sorted(set(meta["answers"])))
    if args.variant == "a" and args.micro_batch:  # ours: one micro-batch's activations alive at a time
        task = PreparedTask(split_prepared(task.support, args.micro_batch), split_prepared(task.query, args.micro_batch),
                            (), task.candidates, task.query)
    t_prefix = None
    if args.variant == "a" and args.prefix_cache:  # once per task, as `prepare_task` does; counted in the step time
        t = time.perf_counter(); cache_prefixes(model, task); t_prefix = time.perf_counter() - t
    steps = args.inner_steps
    if args.variant == "b":
        def loss_fn(model, params, pb):  # the encoder runs inside every forward: nothing cached
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.dtype == "bfloat16"):
                return functional_call(model, params, (pb.batch,), {"ecg_signal": pb.signals, "ecg_mask": pb.masks}).loss.float()
        cfg = MetaConfig(algorithm="maml", inner_steps=steps, inner_lr=0.01, multi_step_loss=tuple([1.0 / steps] * steps))
    else:
        loss_fn = make_loss_fn(device, args.dtype)
        cfg = MetaConfig(algorithm="fomaml", inner_steps=steps, inner_lr=0.01,
                         backend="learn2learn" if args.variant == "c" else "torch")
    learner = MetaLearner(model, cfg)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    if device.type == "cuda": torch.cuda.reset_peak_memory_stats(device); torch.cuda.synchronize()
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        m = learner.step([task], loss_fn)
        if device.type == "cuda": torch.cuda.synchronize()
        times.append(time.perf_counter() - t + (t_prefix or 0.0))  # the prefix pass belongs to the task's cost
    out = dict(variant=args.variant, inner_steps=steps, step_s=min(times), step_times=times, encode_once_s=t_enc, prefix_s=t_prefix,
               peak_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, rss_before_step_gb=rss0,
               query_loss=m["query_loss"], device=str(device), dtype=args.dtype, threads=torch.get_num_threads(),
               support_tokens=int(halves["support"].batch.attention_mask.sum()),
               support_shape=list(halves["support"].batch.input_ids.shape))
    if device.type == "cuda": out["cuda_peak_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
    return out


def run_variant(args, variant, steps) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--variant", variant, "--inner-steps", str(steps),
           "--device", args.device, "--dtype", args.dtype, "--llm", args.llm, "--data", str(args.data),
           "--ecg-cache", str(args.ecg_cache), "--encoder", args.encoder, "--repeats", str(args.repeats),
           "--threads", str(args.threads), "--micro-batch", str(args.micro_batch)]
    if not args.prefix_cache: cmd += ["--no-prefix-cache"]
    if args.episode: cmd += ["--episode", str(args.episode)]
    if args.llm_config: cmd += ["--llm-config", str(args.llm_config)]
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    if r.returncode != 0:
        return dict(variant=variant, inner_steps=steps, error=r.stderr[-1500:], wall_s=time.perf_counter() - t)
    res = json.loads(r.stdout.strip().splitlines()[-1])
    res["wall_s"] = time.perf_counter() - t
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--inner-steps", type=int, default=15, help="inner steps of (a) and (c)")
    p.add_argument("--a-steps", type=int, nargs="*", default=None, help="extra inner-step counts for (a) (memory vs steps)")
    p.add_argument("--b-steps", type=int, nargs="*", default=None, help="inner steps of (b); default: --inner-steps")
    p.add_argument("--variants", default="abc", help="which variants to run")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--llm", default="smollm2-135m")
    p.add_argument("--llm-config", default=None, help="folder with config.json + tokenizer: random weights of that architecture")
    p.add_argument("--encoder", default="ecg-encoder-ptbxl-small")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--ecg-cache", type=Path, default=Path("/tmp/ecgmeta-bench-ecgs"))
    p.add_argument("--episode", type=Path, default=None, help="npz episode file (written when missing)")
    p.add_argument("--repeats", type=int, default=1, help="timed meta-steps per variant (the minimum is reported)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--timeout", type=int, default=3600)
    p.add_argument("--micro-batch", type=int, default=5, help="(a): examples per forward pass (0: whole sets)")
    p.add_argument("--no-prefix-cache", dest="prefix_cache", action="store_false",
                   help="(a): run the LLM over the whole prompt on every inner step (no prompt-prefix key/value cache)")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--variant", default="a", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args))); return 0
    t0 = time.perf_counter()
    rows = []
    if "a" in args.variants:
        for s in sorted({args.inner_steps, *(args.a_steps or [])}): rows.append(run_variant(args, "a", s))
    if "c" in args.variants: rows.append(run_variant(args, "c", args.inner_steps))
    if "b" in args.variants:
        for s in (args.b_steps or [args.inner_steps]): rows.append(run_variant(args, "b", s))
    print(f"\nmeta-step, 5-way 5-shot 5-query, {args.llm}{' (random weights)' if args.llm_config else ''}, "
          f"{args.device} {args.dtype}, one task per meta-batch")
    print(f"{'variant':<34}{'inner':>6}{'step s':>10}{'s/inner':>9}{'peak RSS GB':>13}{'GPU GB':>8}{'query loss':>12}")
    names = {"a": "(a) ours FOMAML, cached feats" + (" + prefix" if args.prefix_cache else ""), "b": "(b) reference-style 2nd order", "c": "(c) learn2learn FOMAML"}
    for r in rows:
        if "error" in r:
            print(f"{names[r['variant']]:<34}{r['inner_steps']:>6}  FAILED: {r['error'].splitlines()[-1] if r['error'] else ''}")
            continue
        print(f"{names[r['variant']]:<34}{r['inner_steps']:>6}{r['step_s']:>10.2f}{r['step_s'] / r['inner_steps']:>9.2f}"
              f"{r['peak_rss_gb']:>13.2f}{r.get('cuda_peak_gb', float('nan')):>8.2f}{r['query_loss']:>12.4f}")
    ok = [r for r in rows if "error" not in r]
    a = next((r for r in ok if r["variant"] == "a" and r["inner_steps"] == args.inner_steps), None)
    c = next((r for r in ok if r["variant"] == "c"), None)
    bs = [r for r in ok if r["variant"] == "b"]
    if a and c: print(f"(c)/(a) time ratio: {c['step_s'] / a['step_s']:.2f}x")
    if a and bs:
        b15 = next((r for r in bs if r["inner_steps"] == args.inner_steps), None)
        if b15: print(f"(b)/(a) time ratio at {args.inner_steps} inner steps: {b15['step_s'] / a['step_s']:.2f}x")
        elif len(bs) >= 2:  # linear fit of (b)'s time in the number of inner steps
            (s0, t0_), (s1, t1) = (bs[0]["inner_steps"], bs[0]["step_s"]), (bs[-1]["inner_steps"], bs[-1]["step_s"])
            est = t0_ + (t1 - t0_) * (args.inner_steps - s0) / (s1 - s0)
            print(f"(b) extrapolated to {args.inner_steps} inner steps: {est:.1f} s -> (b)/(a) = {est / a['step_s']:.2f}x "
                  f"(estimate from {s0} and {s1} steps)")
    if a: print(f"(a) peak RSS {max(r['peak_rss_gb'] for r in ok if r['variant'] == 'a'):.2f} GB (target <= 3 GB)")
    print(f"benchmark wall time {time.perf_counter() - t0:.0f} s")
    if args.json: args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
