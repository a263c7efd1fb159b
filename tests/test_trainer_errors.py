"Bad input to meta-training: NaN loss, mismatched resume, corrupt checkpoint, ECGs missing from the cache."
import json
import math
import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ecgmeta.meta import FeatureCache, MissingFeaturesError
from ecgmeta.trainer import (CheckpointError, TrainingDivergedError, build_data, build_model, config_differences,
                             load_config, meta_train, prepare_task)

DATA = Path(os.environ.get("ECGMETA_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("ecgs")


def tiny(out, cache, *over):
    return load_config("meta_tiny", [f"data_dir={DATA}", f"out_dir={out}", f"ecg_cache_dir={cache}", *over])


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, cache_dir):
    cfg = tiny(tmp_path, cache_dir, "meta.outer_lr=1e30", "meta.clip_grad=null", "checkpoint_every=1", "meta_steps=4")
    with pytest.raises(TrainingDivergedError) as e:
        meta_train(cfg, progress=False)
    rep = json.loads((tmp_path / "nan_report.json").read_text())
    assert rep["step"] >= 2 and rep["classes"] and rep["losses"]
    assert "meta-step" in str(e.value) and "episode classes" in str(e.value)
    latest = (tmp_path / "checkpoints" / "latest").read_text().strip()
    assert latest == f"step-{rep['step'] - 1:06d}"
    w = load_file(str(tmp_path / "checkpoints" / latest / "weights.safetensors"))
    assert all(torch.isfinite(v).all() for v in w.values())


def test_resume_mismatch_and_corrupt_checkpoint(tmp_path, cache_dir):
    cfg = tiny(tmp_path, cache_dir, "meta_steps=1", "checkpoint_every=1", "val_every=1")
    meta_train(cfg, progress=False)
    changed = replace(cfg, n_way=3, meta=replace(cfg.meta, inner_lr=0.5), meta_steps=5)
    diff = config_differences(json.loads((tmp_path / "checkpoints" / "step-000001" / "state.json").read_text())["config"],
                              changed)
    assert diff == ["meta.inner_lr: 0.1 -> 0.5", "n_way: 2 -> 3"]  # meta_steps may change when resuming
    with pytest.raises(CheckpointError, match=r"meta.inner_lr: 0.1 -> 0.5; n_way: 2 -> 3"):
        meta_train(changed, progress=False)
    wf = tmp_path / "checkpoints" / "step-000001" / "weights.safetensors"
    wf.write_bytes(wf.read_bytes()[: wf.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="corrupt or incomplete"):
        meta_train(replace(cfg, meta_steps=2), progress=False)


def test_episode_with_uncached_ecgs_is_a_clear_error(tmp_path, cache_dir):
    from ecgmeta.episodes import EpisodeSampler
    cfg = tiny(tmp_path, cache_dir)
    data, model = build_data(cfg), build_model(cfg)
    ep = EpisodeSampler(data.train, n_way=2, k_shot=2, q_query=2, seed=0).sample()
    ids = sorted({e for it in ep.support + ep.query for e in it.ecg_ids})
    full = FeatureCache(lambda s, m: model.encode_ecgs(s, m))
    full.add(ids, *data.dataset.batch(ids))
    task = prepare_task(model, ep, data.dataset, full)
    assert task.support.features.shape[0] == sum(task.support.n_ecgs)
    part = FeatureCache(None)
    part.store = {k: v for k, v in full.store.items() if k != ids[0]}
    with pytest.raises(MissingFeaturesError, match=rf"classes .* not cached.*{ids[0]}"):
        prepare_task(model, ep, data.dataset, part)
