"Encoder contracts on real PTB-XL records: lead subsets, durations, save/load, bad input, the shipped checkpoint."
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ecgmeta.data import ECGMetaError, LEADS12, PTBXL, read_record
from ecgmeta.encoder import ECGEncoder, ECGEncoderConfig, load_pretrained_encoder, resolve_checkpoint
from ecgmeta.preprocess import PreprocessConfig

DATA = Path(os.environ.get("ECGMETA_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
SHIPPED = "ecg-encoder-ptbxl-small"


@pytest.fixture(scope="module")
def batch():
    "Four real 10 s 12-lead records, preprocessed like the probe (100 Hz, band-pass, z-score)."
    db = PTBXL(DATA / "ptbxl")
    cfg = PreprocessConfig()
    sigs = [cfg.apply(read_record(db.record_path(int(i), 100)))[0] for i in db.ids[:4]]
    return torch.as_tensor(np.stack(sigs))


@pytest.fixture(scope="module")
def enc():
    torch.manual_seed(0)
    return ECGEncoder(ECGEncoderConfig(hidden_size=64, num_layers=2, lead_dim=32)).eval()


@pytest.mark.parametrize("leads", [("I",), ("I", "II"), ("I", "II", "III", "aVR", "aVL", "aVF"), ("V1", "V5", "aVF")])
def test_masked_leads_do_not_matter(enc, batch, leads):
    mask = torch.zeros(len(batch), 12, dtype=torch.bool)
    mask[:, [LEADS12.index(l) for l in leads]] = True
    junk = batch + torch.randn_like(batch) * 10 * (~mask[..., None])
    with torch.no_grad():
        a, b = enc(batch, lead_mask=mask), enc(junk, lead_mask=mask)
    torch.testing.assert_close(a.tokens, b.tokens, atol=1e-5, rtol=1e-5)
    # and the present leads do matter
    with torch.no_grad():
        c = enc(batch * (1 + mask[..., None].float()), lead_mask=mask)
    assert (c.pooled - a.pooled).abs().max() > 1e-3


def test_lead_subsets_differ_per_record(enc, batch):
    "Records with different masks in one batch are encoded as if alone."
    mask = torch.ones(len(batch), 12, dtype=torch.bool)
    mask[0, 1:] = False
    with torch.no_grad():
        together = enc(batch, lead_mask=mask).pooled
        alone = enc(batch[:1], lead_mask=mask[:1]).pooled
    torch.testing.assert_close(together[:1], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("seconds,tokens", [(5, 10), (10, 20), (60, 120)])
def test_variable_length(enc, batch, seconds, tokens):
    x = batch.repeat(1, 1, 6)[..., : seconds * 100]  # 60 s = six real records back to back
    with torch.no_grad():
        out = enc(x)
    assert out.tokens.shape == (len(batch), tokens, 64)
    assert out.token_mask.shape == (len(batch), tokens) and bool(out.token_mask.all())
    assert torch.isfinite(out.pooled).all()


def test_long_record_is_windowed(enc, batch):
    "The first 10 s window of a 60 s record gives the same tokens as the 10 s record alone."
    with torch.no_grad():
        long = enc(batch.repeat(1, 1, 6)).tokens
        short = enc(batch).tokens
    torch.testing.assert_close(long[:, :20], short, atol=1e-5, rtol=1e-5)


def test_other_sampling_rate_is_resampled(enc, batch):
    x500 = torch.nn.functional.interpolate(batch, scale_factor=5, mode="linear", align_corners=False)
    with torch.no_grad():
        out = enc(x500, fs=500)
        ref = enc(batch)
    assert out.tokens.shape == ref.tokens.shape
    cos = torch.nn.functional.cosine_similarity(out.pooled, ref.pooled).min()
    assert cos > 0.9


def test_save_load_round_trip(enc, batch, tmp_path):
    enc.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "config.json").is_file()
    back = ECGEncoder.from_pretrained(tmp_path)
    assert not back.training
    with torch.no_grad():
        torch.testing.assert_close(back(batch).tokens, enc(batch).tokens, atol=0, rtol=0)
    from transformers import AutoModel
    auto = AutoModel.from_pretrained(tmp_path)
    assert isinstance(auto, ECGEncoder)


def test_mismatched_config_is_a_clear_error(enc, tmp_path):
    enc.save_pretrained(tmp_path)
    with pytest.raises(ECGMetaError, match="does not match"):
        ECGEncoder.from_pretrained(tmp_path, hidden_size=96, num_heads=4)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["model_type"] = "bert"
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ECGMetaError, match="not an ECGEncoder"):
        ECGEncoder.from_pretrained(tmp_path)
    with pytest.raises(ECGMetaError, match="No encoder checkpoint"):
        ECGEncoder.from_pretrained(tmp_path / "nope")


def test_bad_input(enc, batch):
    x = batch.clone(); x[1, 3, 100] = float("nan")
    with pytest.raises(ECGMetaError, match="NaN"):
        enc(x)
    with pytest.raises(ECGMetaError, match="lead_mask"):
        enc(batch[:, :2])
    with pytest.raises(ECGMetaError, match="12 canonical"):
        enc(batch[:, :6], lead_mask=torch.ones(len(batch), 6, dtype=torch.bool))
    with pytest.raises(ECGMetaError, match="batch"):
        enc(batch[0])


def test_bf16_autocast_cpu(enc, batch):
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = enc(batch)
    assert torch.isfinite(out.pooled.float()).all()


@pytest.fixture(scope="module")
def amp_enc():
    torch.manual_seed(0)
    return ECGEncoder(ECGEncoderConfig(hidden_size=64, num_layers=2, lead_dim=32, amplitude=True,
                                       preprocess=PreprocessConfig(normalize=None))).eval()


@pytest.fixture(scope="module")
def raw_batch():
    "Four real records band-passed but not normalised (mV), as an amplitude encoder expects."
    db = PTBXL(DATA / "ptbxl")
    cfg = PreprocessConfig(normalize=None)
    return torch.as_tensor(np.stack([cfg.apply(read_record(db.record_path(int(i), 100)))[0] for i in db.ids[:4]]))


def test_amplitude_encoder_contracts(amp_enc, raw_batch):
    "Masked leads, per-record independence, windowing and odd lengths behave as in the default encoder."
    mask = torch.zeros(len(raw_batch), 12, dtype=torch.bool)
    mask[:, :2] = True
    mask[1, 6:] = True
    junk = raw_batch + torch.randn_like(raw_batch) * 10 * (~mask[..., None])
    with torch.no_grad():
        a = amp_enc(raw_batch, lead_mask=mask)
        torch.testing.assert_close(amp_enc(junk, lead_mask=mask).tokens, a.tokens, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(amp_enc(raw_batch[1:2], lead_mask=mask[1:2]).tokens, a.tokens[1:2], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(amp_enc(raw_batch.repeat(1, 1, 6)).tokens[:, :20], amp_enc(raw_batch).tokens,
                                   atol=1e-5, rtol=1e-5)
        odd = amp_enc(raw_batch[..., :777])
    assert odd.tokens.shape == (4, 16, 64) and torch.isfinite(odd.tokens).all()


def test_amplitude_is_seen(amp_enc, raw_batch):
    "The standardised input ignores scale; the encoder output does not (only through the log-amplitude embedding)."
    z1, a1 = amp_enc.amplitude_features(raw_batch)
    z2, a2 = amp_enc.amplitude_features(2 * raw_batch)
    torch.testing.assert_close(z1, z2, atol=1e-3, rtol=5e-2)  # up to the 1e-3 mV floor added to each std
    shift = a2 - a1  # log 2, less for very quiet patches where the 1e-3 mV floor weighs
    assert (shift > 0).all() and (shift <= np.log(2) + 1e-4).all() and abs(float(shift.median()) - np.log(2)) < 1e-2
    with torch.no_grad():
        assert (amp_enc(2 * raw_batch).pooled - amp_enc(raw_batch).pooled).abs().max() > 1e-3


def test_config_records_preprocessing(amp_enc, tmp_path):
    assert ECGEncoderConfig().preprocess_config() == PreprocessConfig()
    amp_enc.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["amplitude"] is True and saved["preprocess"]["normalize"] is None
    back = ECGEncoder.from_pretrained(tmp_path)
    assert back.config.preprocess_config() == PreprocessConfig(normalize=None)
    # a config written before the field existed means the default preprocessing and no amplitude pathway
    for k in ("amplitude", "preprocess"): saved.pop(k)
    (tmp_path / "config.json").write_text(json.dumps(saved))
    old = ECGEncoderConfig.from_pretrained(tmp_path)
    assert old.preprocess_config() == PreprocessConfig() and old.amplitude is False
    with pytest.raises(ECGMetaError, match=r"unknown key\(s\) \[.normalise.\]"):
        ECGEncoderConfig(preprocess={"normalise": "zscore"})


def test_shipped_checkpoint_loads_offline_by_name():
    folder = resolve_checkpoint(SHIPPED)
    size = sum(p.stat().st_size for p in folder.iterdir())
    assert size < 20e6, f"shipped checkpoint is {size / 1e6:.1f} MB"
    card = (folder / "MODEL_CARD.md").read_text()
    assert "not for clinical use" in card.lower() and "ecgmeta pretrain" in card
    enc = load_pretrained_encoder(SHIPPED)
    assert sum(p.numel() for p in enc.parameters()) <= 10_000_000
    assert next(enc.parameters()).dtype == torch.float32
    pre = enc.config.preprocess_config()  # what the checkpoint was trained on
    db = PTBXL(DATA / "ptbxl")
    x = torch.as_tensor(np.stack([pre.apply(read_record(db.record_path(int(i), 100)))[0] for i in db.ids[:4]]))
    with torch.no_grad():
        out = enc(x)
    assert out.tokens.shape[1] == 20 and torch.isfinite(out.pooled).all()
    # in a fresh interpreter with the hub switched off, by name through from_pretrained
    code = ("import torch; from ecgmeta.encoder import ECGEncoder; e = ECGEncoder.from_pretrained('%s'); "
            "print(e(torch.zeros(1, 12, 1000)).tokens.shape)" % SHIPPED)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "torch.Size([1, 20," in r.stdout
