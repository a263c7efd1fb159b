"A meta-training run killed with SIGKILL and resumed ends exactly like an uninterrupted run (CPU, tiny LLaMA)."
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

DATA = Path(os.environ.get("ECGMETA_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
ENV = dict(os.environ, OMP_NUM_THREADS="1")  # one thread: the 2-core CI box is shared, oversubscription is slow
CLI = [sys.executable, "-c", "import sys; from ecgmeta.cli import main; sys.exit(main())"]


def run_args(out, cache, steps=6):
    return CLI + ["meta-train", "--config", "meta_tiny", "--out", str(out), "--data", str(DATA), "--no-progress",
                  "--set", f"ecg_cache_dir={cache}", "--set", f"meta_steps={steps}", "--set", "checkpoint_every=2",
                  "--set", "val_every=3"]


def final_records(out):
    recs = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    for r in recs: r.pop("seconds", None)
    return recs


@pytest.mark.timeout(300)
def test_sigkill_and_resume_is_exact(tmp_path):
    cache = tmp_path / "ecgs"
    full = tmp_path / "full"
    subprocess.run(run_args(full, cache), check=True, capture_output=True, timeout=240, env=ENV)
    killed = tmp_path / "killed"
    p = subprocess.Popen(run_args(killed, cache), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    latest = killed / "checkpoints" / "latest"
    while not latest.exists():
        assert p.poll() is None, "the run ended before its first checkpoint"
        time.sleep(0.01)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL
    step = int(latest.read_text().strip().split("-")[1])
    assert step < 6 and not (killed / "result.json").exists(), "the kill came too late to test anything"
    r = subprocess.run(run_args(killed, cache), capture_output=True, text=True, timeout=240, env=ENV)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resumed from" in r.stderr
    assert final_records(killed) == final_records(full)
    a = load_file(str(full / "checkpoints" / "step-000006" / "weights.safetensors"))
    b = load_file(str(killed / "checkpoints" / "step-000006" / "weights.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
