"Data-parallel meta-training over tasks: 2 CPU processes (gloo) give the same weights as 1 process."
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

DATA = Path(os.environ.get("ECGMETA_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
ENV = dict(os.environ, OMP_NUM_THREADS="1")
CLI = [sys.executable, "-c", "import sys; from ecgmeta.cli import main; sys.exit(main())"]


def run(out, cache, *extra):
    args = CLI + ["meta-train", "--config", "meta_tiny", "--out", str(out), "--data", str(DATA), "--no-progress",
                  "--set", f"ecg_cache_dir={cache}", "--set", "meta_steps=2", "--set", "checkpoint_every=2",
                  "--set", "val_every=2", "--set", "meta.tasks_per_batch=2", *extra]
    r = subprocess.run(args, capture_output=True, text=True, timeout=300, env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


@pytest.mark.timeout(400)
def test_two_processes_equal_one(tmp_path):
    cache = tmp_path / "ecgs"
    run(tmp_path / "one", cache)
    r = run(tmp_path / "two", cache, "--num-processes", "2")
    assert "2 processes" in r.stdout
    a = load_file(str(tmp_path / "one" / "checkpoints" / "step-000002" / "weights.safetensors"))
    b = load_file(str(tmp_path / "two" / "checkpoints" / "step-000002" / "weights.safetensors"))
    assert a.keys() == b.keys()
    for k in a: torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=1e-5)
    # and the run did train: the weights moved away from a fresh model's
    from ecgmeta.trainer import build_model, load_config
    fresh = build_model(load_config("meta_tiny", [f"data_dir={DATA}"]))
    p = dict(fresh.named_parameters())
    assert max((a[k] - p[k].detach()).abs().max().item() for k in a) > 1e-5
    # the validation metrics agree as well
    import json
    va = [json.loads(l) for l in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()][-1]
    vb = [json.loads(l) for l in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()][-1]
    assert va["split"] == vb["split"] == "val"
    assert abs(va["val_loss"] - vb["val_loss"]) < 1e-4 and va["val_accuracy"] == vb["val_accuracy"]
