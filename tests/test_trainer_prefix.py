"Prompt-prefix key/value caches in meta-training: the same meta-gradients as without them, micro-batched or not."
import os
from pathlib import Path

import pytest
import torch

from ecgmeta.episodes import EpisodeSampler
from ecgmeta.fusion import PrefixCache
from ecgmeta.meta import Chunked, FeatureCache, MetaConfig, meta_gradient
from ecgmeta.trainer import (TrainerError, build_data, build_model, load_config, make_loss_fn, prefix_cache_default,
                             prepare_task)

DATA = Path(os.environ.get("ECGMETA_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    cfg = load_config("meta_tiny", [f"data_dir={DATA}", f"out_dir={tmp_path_factory.mktemp('run')}",
                                    f"ecg_cache_dir={tmp_path_factory.mktemp('ecgs')}"])
    data, model = build_data(cfg), build_model(cfg)
    ep = EpisodeSampler(data.train, n_way=2, k_shot=2, q_query=2, seed=0).sample()
    cache = FeatureCache(lambda s, m: model.encode_ecgs(s, m))
    return model, ep, data, cache


def _parts(half):
    return [pb for _, pb in half] if isinstance(half, Chunked) else [half]


@pytest.mark.parametrize("algorithm,micro", [("fomaml", None), ("fomaml", 2), ("maml", None), ("maml", 3)])
def test_same_meta_gradient(setup, algorithm, micro):
    model, ep, data, cache = setup
    assert prefix_cache_default(model)
    on, off = (prepare_task(model, ep, data.dataset, cache, micro_batch=micro, prefix_cache=c) for c in (None, False))
    assert all(isinstance(pb.prefix, PrefixCache) for h in (on.support, on.query) for pb in _parts(h))
    assert all(pb.prefix is None for h in (off.support, off.query) for pb in _parts(h))
    cfg = MetaConfig(algorithm=algorithm, inner_steps=2, inner_lr=0.5)
    g_on, g_off = (meta_gradient(model, t, cfg, make_loss_fn()) for t in (on, off))
    for n in g_off: torch.testing.assert_close(g_on[n], g_off[n], atol=1e-6, rtol=1e-4, msg=n)
    assert any(float(g.abs().sum()) > 0 for g in g_on.values())


def test_prefix_cache_needs_frozen_llm():
    with pytest.raises(TrainerError, match="prefix_cache=True needs a frozen LLM"):
        load_config("meta_tiny", ["lora=true", "prefix_cache=true"])
