"`ecgmeta probe` end to end on a tiny configuration of the real PTB-XL sample."
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(os.environ.get("ECGMETA_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
RUN = [sys.executable, "-c", "import sys; from ecgmeta.cli import main; sys.exit(main(sys.argv[1:]))"]


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    "A small randomly initialised encoder saved as a checkpoint folder (the probe loads it by path)."
    import torch
    from ecgmeta.encoder import ECGEncoder, ECGEncoderConfig
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("enc")
    ECGEncoder(ECGEncoderConfig(hidden_size=64, num_layers=1, num_heads=2)).save_pretrained(d)
    return d


def test_probe_cli_end_to_end(tmp_path, encoder_dir):
    out = tmp_path / "out"
    r = subprocess.run(RUN + ["probe", "--data", str(DATA), "--encoder", str(encoder_dir), "--out", str(out),
                              "--cache-dir", str(tmp_path / "cache"), "--fractions", "1", "--leads", "all,I",
                              "--max-records", "300", "--n-boot", "100", "--no-cnn", "--no-progress"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    for f in ("probe.json", "probe.md", "probe.csv", "probe.png"):
        assert (out / f).stat().st_size > 0, f
        assert str(out / f) in r.stdout  # says where it wrote
    assert "| method | leads | 100% labels |" in r.stdout
    rep = json.loads((out / "probe.json").read_text())
    got = {(x["method"], x["leads"], x["fraction"]) for x in rep["results"]}
    assert got == {(m, l, 1.0) for m in ("pretrained", "random", "stats") for l in ("all", "I")}
    for x in rep["results"]:
        assert 0 <= x["ci_low"] <= x["auroc"] <= x["ci_high"] <= 1
        assert set(x["per_class"]) == {"NORM", "MI", "STTC", "CD", "HYP"}
    assert rep["config"]["cnn"] is None and rep["config"]["max_records"] == 300
    n = rep["meta"]["n_records"]
    assert 280 <= sum(n.values()) <= 320 and min(n.values()) >= 10
    stats = next(x for x in rep["results"] if x["method"] == "stats" and x["leads"] == "all")
    assert stats["auroc"] > 0.6  # real labels, real signals: better than chance
    assert (tmp_path / "cache").is_dir()


def test_probe_cli_bad_leads(tmp_path, encoder_dir):
    r = subprocess.run(RUN + ["probe", "--data", str(DATA), "--encoder", str(encoder_dir), "--out", str(tmp_path),
                              "--leads", "I+Q", "--no-cnn"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert "lead subset 'I+Q'" in r.stderr and "Traceback" not in r.stderr
