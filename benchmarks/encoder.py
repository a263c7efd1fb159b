"""Encoder benchmark on CPU: throughput (ECGs/s) and peak memory at batch 64 for 10 s 12-lead 100 Hz input, and the
time of one pretraining step, against a plain 1D-CNN of similar size. Each measurement runs in a fresh process so
peak resident memory (VmHWM) is its own.

Run: .venv/bin/python benchmarks/encoder.py [--batch 64] [--repeats 5] [--threads N]
"""
import argparse
import multiprocessing as mp
import statistics
import time

import torch
from torch import nn


def _hwm_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"): return int(line.split()[1]) / 1024
    return float("nan")


def _rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"): return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f: f.write("5")  # resets VmHWM to the current RSS
    except OSError:
        pass


class PlainCNN(nn.Module):
    "A plain 1D-CNN over the 12 leads of similar size to the encoder (the obvious alternative)."

    def __init__(self, width: int = 128, out: int = 192):
        super().__init__()
        layers, c = [], 12
        for w, s in [(width, 2), (width, 2), (2 * width, 2), (2 * width, 2), (2 * width, 2), (2 * width, 1)]:
            layers += [nn.Conv1d(c, w, 7, stride=s, padding=3), nn.BatchNorm1d(w), nn.ReLU()]
            c = w
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(c, out)

    def forward(self, x, lead_mask=None):
        return self.head(self.body(x).mean(-1))


def _job(kind: str, batch: int, repeats: int, threads: int, q):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    from ecgmeta.encoder import ECGEncoder, ECGEncoderConfig
    from ecgmeta.pretrain import PretrainConfig, PretrainModel
    x = torch.randn(batch, 12, 1000) * 0.5
    m = torch.ones(batch, 12, dtype=torch.bool)
    if kind.startswith("encoder"):
        model = ECGEncoder(ECGEncoderConfig())
        fwd = lambda: model(x, m).pooled
    else:
        model = PlainCNN()
        fwd = lambda: model(x)
    params = sum(p.numel() for p in model.parameters())
    res = {"model": kind, "params_M": params / 1e6}
    if kind.endswith("infer"):
        model.eval()
        with torch.no_grad():
            fwd()
            base = _rss_mb(); _reset_peak()
            ts = []
            for _ in range(repeats):
                t = time.perf_counter(); fwd(); ts.append(time.perf_counter() - t)
        res.update(ms=1000 * statistics.median(ts), per_s=batch / statistics.median(ts), peak_mb=_hwm_mb() - base)
    else:  # one training step
        if kind.startswith("encoder"):
            cfg = PretrainConfig(objectives=("mae", "contrastive"))
            pm = PretrainModel(model)
            opt = torch.optim.AdamW(pm.parameters(), lr=1e-3)
            g = torch.Generator().manual_seed(0)
            step_loss = lambda: pm(x, m, cfg, g)["loss"]
            res["model"] += " (mae+contrastive)"
        else:
            y = (torch.rand(batch, 192) > 0.5).float()
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
            step_loss = lambda: nn.functional.binary_cross_entropy_with_logits(model(x), y)
            res["model"] += " (supervised BCE)"

        def step():
            opt.zero_grad(); step_loss().backward(); opt.step()
        step()
        base = _rss_mb(); _reset_peak()
        ts = []
        for _ in range(repeats):
            t = time.perf_counter(); step(); ts.append(time.perf_counter() - t)
        res.update(ms=1000 * statistics.median(ts), per_s=batch / statistics.median(ts), peak_mb=_hwm_mb() - base)
    q.put(res)


def run(kind, batch, repeats, threads):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_job, args=(kind, batch, repeats, threads, q))
    p.start(); res = q.get(); p.join()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    a = ap.parse_args()
    rows = {k: run(k, a.batch, a.repeats, a.threads) for k in ("encoder-infer", "cnn-infer", "encoder-train", "cnn-train")}
    print(f"CPU, batch {a.batch}, 12 leads x 10 s x 100 Hz, {a.threads} threads, median of {a.repeats}")
    print(f"{'what':<46}{'params (M)':>11}{'ms/batch':>10}{'ECGs/s':>9}{'peak MB':>9}{'vs CNN':>8}")
    for k, ref in [("encoder-infer", "cnn-infer"), ("cnn-infer", "cnn-infer"), ("encoder-train", "cnn-train"), ("cnn-train", "cnn-train")]:
        r = rows[k]
        label = ("inference: " if k.endswith("infer") else "train step: ") + r["model"]
        print(f"{label:<46}{r['params_M']:>11.2f}{r['ms']:>10.0f}{r['per_s']:>9.0f}{r['peak_mb']:>9.0f}"
              f"{rows[ref]['ms'] / r['ms']:>7.2f}x")
    print("vs CNN: speed ratio (CNN time / this time; >1 = faster than the CNN). Peak MB: resident-memory rise over the idle model.")


if __name__ == "__main__":
    main()
