"Signal descriptors end to end: a tiny meta-training run with `descriptors=True` and a 'proto' fusion, its saved model, evaluation and errors."
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ecgmeta.cli import main
from ecgmeta.data import ECGMetaError
from ecgmeta.descriptors import DESCRIPTOR_NAMES, ecg_descriptors, fit_descriptor_stats
from ecgmeta.trainer import TrainerError, build_data, build_model, config_from_dict, fit_run_descriptors

DATA = Path(os.environ.get("ECGMETA_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
K = len(DESCRIPTOR_NAMES)


def tiny(tmp_path, **kw):
    return dict(ecg_cache_dir=str(tmp_path / "ecgs"), llm="tiny-llama", encoder="random", encoder_hidden=32, fusion="proto",
                fusion_tokens=2, question_types=["single-verify", "single-query"], max_classes=4, n_way=2, k_shot=2,
                q_query=1, meta=dict(algorithm="anil", first_order=True, inner_steps=0, tasks_per_batch=1),
                meta_steps=2, val_every=2, val_episodes=1, checkpoint_every=2, descriptors=True, **kw)


@pytest.mark.timeout(300)
def test_demo_with_descriptors(tmp_path, capsys):
    "Meta-train and evaluate with descriptors: the saved encoder carries its statistics, tokens are wider, every baseline runs."
    cfg = {"train": tiny(tmp_path, descriptor_alpha=0.3), "eval": dict(n_way=[2], k_shot=[2], q_query=1, episodes=2), "report_reserve_s": 5, "ecgqa": False}
    path = tmp_path / "demo.json"; path.write_text(json.dumps(cfg))
    out = tmp_path / "demo"
    rc = main(["demo", "--data", str(DATA), "--out", str(out), "--config", str(path), "--budget-minutes", "10", "--no-progress"])
    assert rc == 0
    enc_cfg = json.loads((out / "run" / "model" / "encoder" / "config.json").read_text())
    assert enc_cfg["descriptors"]["names"] == list(DESCRIPTOR_NAMES)
    fus_cfg = json.loads((out / "run" / "model" / "fusion" / "config.json").read_text())
    assert fus_cfg["n_descriptors"] == K and fus_cfg["d_enc"] == 32 + K and fus_cfg["descriptor_alpha"] == 0.3
    from ecgmeta.evaluate import ConditionFeatures, _descriptor_alpha, load_run
    model = load_run(out / "run")[0]
    assert _descriptor_alpha(model) == 0.3  # the protonet baseline weighs descriptors as the fusion does
    assert ConditionFeatures(model.encoder, None, descriptor_alpha=_descriptor_alpha(model)).descriptor_alpha == 0.3
    # the statistics are those of the meta-train ECGs, fitted again identically (what a resumed run relies on)
    tc = config_from_dict({**cfg["train"], "data_dir": str(DATA)})
    again = fit_run_descriptors(build_data(tc))
    assert np.allclose(again["center"], enc_cfg["descriptors"]["center"]) and np.allclose(again["scale"], enc_cfg["descriptors"]["scale"])
    md = (out / "report.md").read_text()
    assert "signal descriptors" in md
    recs = pd.read_csv(out / "records.csv")
    assert {"meta", "protonet", "random_ecg", "no_ecg"} <= set(recs.method)


def test_build_model_needs_statistics(tmp_path):
    tc = config_from_dict({**tiny(tmp_path), "data_dir": str(DATA)})
    with pytest.raises(TrainerError, match="fit_run_descriptors"):
        build_model(tc)
    stats = fit_descriptor_stats(np.random.default_rng(0).normal(size=(50, K)))
    m = build_model(tc, descriptor_stats=stats)
    assert m.encoder.config.token_width == 32 + K and m.fusion.config.n_descriptors == K
    with torch.no_grad():
        t = m.encode_ecgs(torch.randn(2, 12, 1000) * 0.3)
    assert t.shape[-1] == 32 + K
    with pytest.raises(ECGMetaError, match="descriptor_alpha"):
        config_from_dict({**tiny(tmp_path), "data_dir": str(DATA), "descriptor_alpha": -1})


def test_descriptors_on_real_records_and_bad_lengths():
    "Descriptors of real PTB-XL records are defined; a 1 s ECG and a mislabelled rate are refused with the fix."
    from ecgmeta.data import PTBXL
    db = PTBXL(DATA / "ptbxl")
    recs = [db.record(e, fs=100) for e in db.ids[:8]]
    d = ecg_descriptors(np.stack([r.signal for r in recs]), np.stack([r.mask for r in recs]), fs=100)
    assert d.shape == (8, K) and np.isfinite(d).mean() > 0.95
    hr = np.exp(d[:, 0])
    assert ((hr > 30) & (hr < 200)).all()
    with pytest.raises(ECGMetaError, match="at least 2 s"):
        ecg_descriptors(recs[0].signal[:, :100], fs=100)
    # the same record read at 500 Hz but declared as 100 Hz: heart rates come out five times too low
    fast = db.record(db.ids[0], fs=500)
    wrong = ecg_descriptors(fast.signal, fast.mask, fs=100)
    right = ecg_descriptors(fast.signal, fast.mask, fs=500)
    assert abs(np.exp(right[0, 0]) - hr[0]) < 0.1 * hr[0] and np.exp(wrong[0, 0]) < 0.3 * hr[0]
