"Pretraining on real PTB-XL records: a step lowers the loss, the CLI runs, checkpoints resume."
import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from ecgmeta.data import ECGMetaError, PTBXL, read_record
from ecgmeta.encoder import ECGEncoder
from ecgmeta.preprocess import PreprocessConfig
from ecgmeta.pretrain import (OBJECTIVES, PretrainConfig, PretrainData, PretrainModel, plot_losses, pretrain,
                              read_metrics)

DATA = Path(os.environ.get("ECGMETA_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
ROOT = Path(__file__).resolve().parents[1]
TINY = dict(hidden_size=64, num_layers=1, num_heads=4, lead_dim=32)


@pytest.fixture(scope="module")
def data():
    "16 real training-fold records (first 5 s), preprocessed, with random stand-in text embeddings of 8 distinct texts."
    db = PTBXL(DATA / "ptbxl")
    ids = db.split_ids("train")[:16]
    cfg = PreprocessConfig(seconds=5.0)
    sigs, masks = zip(*(cfg.apply(read_record(db.record_path(int(i), 100))) for i in ids))
    g = np.random.default_rng(0)
    te = g.normal(size=(8, 384)).astype(np.float32)[np.arange(16) % 8]
    return PretrainData(np.stack(sigs), np.stack(masks), np.asarray(ids), te / np.linalg.norm(te, axis=1, keepdims=True))


@pytest.mark.parametrize("objectives", [("mae",), ("contrastive",), ("text",), OBJECTIVES])
def test_one_step_reduces_loss(data, objectives):
    cfg = PretrainConfig(objectives=objectives, **TINY)
    torch.manual_seed(0)
    model = PretrainModel(ECGEncoder(cfg.encoder_config()))
    x, m = torch.as_tensor(data.signals[:16]), torch.as_tensor(data.masks[:16])
    te = torch.as_tensor(data.text_emb[:16])

    def loss():
        model.eval()
        with torch.no_grad():
            return float(model(x, m, cfg, torch.Generator().manual_seed(1), te)["loss"])

    before = loss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    out = model(x, m, cfg, torch.Generator().manual_seed(1), te)
    out["loss"].backward()
    opt.step()
    after = loss()
    assert after < before, (objectives, before, after)


def test_pretrain_resume_and_outputs(data, tmp_path):
    cfg = PretrainConfig(objectives=("mae", "contrastive"), steps=2, batch_size=4, log_every=1, ckpt_every=1,
                         warmup_steps=1, **TINY)
    pretrain(cfg, data, tmp_path, progress=False)
    from ecgmeta.pretrain import _load_state
    _, meta = _load_state(tmp_path / "checkpoint" / "state.safetensors")
    assert meta["step"] == 2 and not (tmp_path / "checkpoint" / "state.pt").exists()
    pretrain(dataclasses.replace(cfg, steps=4), data, tmp_path, progress=False)
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3, 4]
    assert (tmp_path / "losses.png").is_file() and (tmp_path / "encoder" / "model.safetensors").is_file()
    fig = plot_losses(tmp_path)
    assert len(fig.axes[0].lines) == 3  # loss, mae, contrastive
    with pytest.raises(ECGMetaError, match="different config"):
        pretrain(dataclasses.replace(cfg, lr=0.5), data, tmp_path, progress=False)


def test_resume_is_exact(data, tmp_path):
    "Two steps then two more equals four steps in one go (model, optimiser, RNG and data order restored)."
    cfg = PretrainConfig(objectives=("mae", "contrastive"), steps=4, batch_size=4, log_every=1, ckpt_every=2,
                         warmup_steps=1, **TINY)
    a = pretrain(cfg, data, tmp_path / "a", progress=False)
    pretrain(dataclasses.replace(cfg, steps=2), data, tmp_path / "b", progress=False)
    b = pretrain(cfg, data, tmp_path / "b", progress=False)
    for (k, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        torch.testing.assert_close(p, q, msg=k)


def test_text_objective_needs_embeddings(data, tmp_path):
    cfg = PretrainConfig(objectives=("text",), steps=1, batch_size=8, **TINY)
    with pytest.raises(ECGMetaError, match="text embeddings"):
        pretrain(cfg, dataclasses.replace(data, text_emb=None), tmp_path, progress=False)


def test_cli_pretrain(data, tmp_path, capsys):
    from ecgmeta.cli import main
    folder = data.save(tmp_path / "data")
    conf = tmp_path / "c.json"
    conf.write_text('{"hidden_size": 64, "num_layers": 1, "lead_dim": 32, "log_every": 1, "warmup_steps": 1}')
    out = tmp_path / "run"
    rc = main(["pretrain", "--config", str(conf), "--data", str(folder), "--out", str(out), "--steps", "2",
               "--batch-size", "4", "--objective", "mae,text", "--no-progress", "--export", str(tmp_path / "half")])
    assert rc == 0
    assert str(out) in capsys.readouterr().out
    rows = read_metrics(out)
    assert rows[-1]["step"] == 2 and {"mae", "text"} <= set(rows[-1])
    half = ECGEncoder.from_pretrained(tmp_path / "half")
    assert next(half.parameters()).dtype == torch.float32
    assert (tmp_path / "half" / "model.safetensors").stat().st_size < (out / "encoder" / "model.safetensors").stat().st_size
    conf.write_text('{"hidden": 64}')
    assert main(["pretrain", "--config", str(conf), "--data", str(folder), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ecgmeta: error: pretrain config {conf}: unknown key(s) ['hidden']") and "Traceback" not in err


def test_shipped_checkpoint_matches_its_reproduction_config():
    "The shipped encoder has the architecture of `configs/pretrain_small.json`, trained on folds 1-8, text objective."
    import json
    from ecgmeta.encoder import resolve_checkpoint
    cfg = PretrainConfig.from_dict(json.loads((ROOT / "ecgmeta" / "configs" / "pretrain_small.json").read_text()))
    assert cfg.folds == (1, 2, 3, 4, 5, 6, 7, 8)
    shipped = json.loads((resolve_checkpoint("ecg-encoder-ptbxl-small") / "config.json").read_text())
    want = cfg.encoder_config().to_dict()
    for k in ("hidden_size", "lead_dim", "num_layers", "num_heads", "patch_size", "fs", "stem_channels", "amplitude"):
        assert shipped[k] == want[k], (k, shipped[k], want[k])
    # the checkpoint records the preprocessing it was trained on, which is what `ecgmeta probe` feeds it
    from ecgmeta.encoder import load_pretrained_encoder
    assert load_pretrained_encoder().config.preprocess_config() == cfg.preprocess
    card = (resolve_checkpoint("ecg-encoder-ptbxl-small") / "MODEL_CARD.md").read_text()
    assert "configs/pretrain_small.json" in card and f"{cfg.steps} steps" in card
