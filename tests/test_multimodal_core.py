"""ECG-text zero-shot, tolerance, single-lead self-alignment and retrieval on real PTB-XL records."""
import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from ecgmeta.data import PTBXL
from ecgmeta.encoder import ECGEncoder
from ecgmeta.multimodal import (BenchmarkConfig, EmbeddingIndex, MultimodalConfig, MultimodalError, TextMap,
                                class_prompts, encode, load_records, objective_model, precision_at_k,
                                prompt_embeddings, run_benchmark, train_objective, zero_shot_scores)
from ecgmeta.probe import bootstrap_auroc

DATA = Path(os.environ.get("ECGMETA_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
CACHE = Path(os.environ.get("ECGMETA_CACHE", "/tmp/ecgmeta-cache"))
SMALL = MultimodalConfig(steps=4, batch_size=16)


@pytest.fixture(scope="module")
def db(): return PTBXL(DATA / "ptbxl")


@pytest.fixture(scope="module")
def test_recs(db): return load_records(db, CACHE, db.split_ids("test"), text=True)


@pytest.fixture(scope="module")
def train_recs(db):
    ids = np.sort(np.random.default_rng(0).choice(db.split_ids("train"), 128, replace=False))
    return load_records(db, CACHE, ids, text=True)


def test_zero_shot_prompts_recover_labels_from_oracle_text(db, test_recs):
    "With each record's own text embedding as its 'ECG' embedding, class prompts must rank the labels well."
    for kind, floor in (("superclass", 0.9), ("rhythm", 0.9)):
        y = db.labels(kind).loc[test_recs.ids].to_numpy()
        keep = y.sum(1) > 0
        s = zero_shot_scores(test_recs.text_emb[keep], prompt_embeddings(class_prompts(db, kind), CACHE))
        est = bootstrap_auroc(y[keep], s, n_boot=100)
        assert est.auroc > floor, (kind, est)
    p = class_prompts(db, "rhythm")
    assert "atrial fibrillation" in p["AFIB"] and p["SR"][0] == "an ECG showing sinus rhythm"


def test_text_objective_trains_only_the_ecg_side(train_recs):
    fit = train_objective("text", train_recs, SMALL, progress=False)
    assert len(fit.losses) == 4 and np.isfinite(fit.losses).all()
    emb = encode(fit.model, train_recs.signals[:6], train_recs.masks[:6])
    assert emb.shape == (6, 384)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    with pytest.raises(MultimodalError, match="text embeddings"):
        train_objective("text", replace(train_recs, text_emb=None), SMALL, progress=False)


def test_selfmis_teacher_stays_frozen_and_student_moves(train_recs):
    teacher = ECGEncoder(SMALL.encoder_config()).eval()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    fit = train_objective("selfmis", train_recs, SMALL, teacher=teacher, progress=False)
    for k, v in teacher.state_dict().items(): torch.testing.assert_close(v, before[k])
    assert fit.losses[-1] < fit.losses[0]  # alignment to a fixed target is easy: the loss must fall
    assert not fit.model.teacher.training
    with pytest.raises(MultimodalError, match="teacher"):
        objective_model("selfmis", ECGEncoder(SMALL.encoder_config()), SMALL)


def test_encode_leads_and_noise(test_recs):
    enc = ECGEncoder(SMALL.encoder_config()).eval()
    x, m = test_recs.signals[:32], test_recs.masks[:32]
    clean = encode(enc, x, m)
    d = {snr: np.linalg.norm(encode(enc, x, m, snr_db=snr) - clean, axis=1).mean() for snr in (30.0, 0.0)}
    assert d[0.0] > d[30.0] > 0
    np.testing.assert_array_equal(encode(enc, x, m, "I", 0.0, seed=3), encode(enc, x, m, "I", 0.0, seed=3))
    assert not np.array_equal(encode(enc, x, m, "I"), clean)


def test_retrieval_index_and_precision(db, test_recs):
    idx = EmbeddingIndex(test_recs.text_emb, test_recs.ids)
    s, nb = idx.search(test_recs.text_emb[:10], k=3, exclude=test_recs.ids[:10])
    assert nb.shape == (10, 3) and not (nb == test_recs.ids[:10, None]).any()
    assert (np.diff(s, axis=1) <= 1e-6).all()
    sup = db.labels("superclass")
    y = sup.loc[test_recs.ids].to_numpy()
    keep = y.sum(1) > 0
    _, nb = idx.search(test_recs.text_emb[keep], k=5, exclude=test_recs.ids[keep])
    p_text = precision_at_k(y[keep], sup.loc[nb.ravel()].to_numpy().reshape(len(nb), 5, -1)).mean()
    rnd = EmbeddingIndex(np.random.default_rng(0).normal(size=test_recs.text_emb.shape), test_recs.ids)
    _, nb = rnd.search(test_recs.text_emb[keep] @ np.random.default_rng(1).normal(size=(384, 384)), k=5)
    p_rand = precision_at_k(y[keep], sup.loc[nb.ravel()].to_numpy().reshape(len(nb), 5, -1)).mean()
    assert p_text > p_rand + 0.15, (p_text, p_rand)  # records with similar statements share superclasses
    table = idx.lookup(test_recs.text_emb[0], db, k=2)
    assert list(table.columns) == ["ecg_id", "similarity", "report", "superclass", "scp_codes"]
    with pytest.raises(MultimodalError, match="dims"): idx.search(np.zeros((1, 5)))


def test_text_map_fits_training_texts(train_recs):
    f = np.random.default_rng(0).normal(size=(len(train_recs), 16)).astype(np.float32)
    tm = TextMap.fit(f, train_recs.text_emb, alpha=1e-3)
    assert tm(f).shape == (len(train_recs), 384)


@pytest.mark.slow  # ~1-3 min: builds every row of the benchmark table on real records
def test_mini_benchmark_writes_every_row(db, tmp_path):
    cfg = BenchmarkConfig(train=MultimodalConfig(steps=2, batch_size=16), grid_leads=("all", "I"), grid_snr=(None, 0.0),
                          probe_train=None, Cs=(0.1,), n_boot=30, k=5, max_records=(160, 60, 80))
    rep = run_benchmark(db, CACHE, cfg, out=tmp_path, progress=False)
    paths = rep.save(tmp_path)
    assert all(p.is_file() for p in paths.values())
    rows = json.loads(paths["json"].read_text())["rows"]
    assert len(rows) >= 16 and all(np.isfinite(r["value"]) for r in rows)
    assert {r["model"] for r in rows if r["task"].startswith("MI vs NORM")} >= {"single-lead, self-aligned",
                                                                              "single-lead, no alignment"}
    assert "| model | leads | clean | 0 dB |" in paths["markdown"].read_text()
    enc = ECGEncoder.from_pretrained(tmp_path / "encoders" / "tolerant")
    assert enc.config.hidden_size == cfg.train.hidden_size
