"Both meta-learning backends (ours and learn2learn) give the same meta-gradient on a tiny LLaMA."
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.func import functional_call

from ecgmeta.llm import tiny_llm
from ecgmeta.meta import MetaConfig, MetaLearner, meta_gradient, trainable_params


class PrefixModel(nn.Module):
    "A trainable fusion (features -> 2 prefix embeddings) in front of a frozen tiny LLaMA."
    def __init__(self, attn="eager"):
        super().__init__()
        self.llm, self.tok = tiny_llm(attn_implementation=attn, seed=1)
        self.llm.requires_grad_(False)
        g = torch.Generator().manual_seed(0)
        self.fusion = nn.Sequential(nn.Linear(8, 32), nn.GELU(), nn.Linear(32, 2 * 64))
        with torch.no_grad():
            for p in self.fusion.parameters(): p.copy_(torch.randn(p.shape, generator=g) * 0.2)

    def forward(self, ids, feats, labels):
        emb = self.llm.get_input_embeddings()(ids)
        pre = self.fusion(feats).view(len(ids), 2, -1).to(emb.dtype)
        return self.llm(inputs_embeds=torch.cat([pre, emb], 1)).logits[:, 1:-1]  # predicts the tokens


def loss_fn(model, params, batch):
    # our own cross-entropy: transformers' loss upcasts logits to float32, which would hide float64 precision
    logits = functional_call(model, params, (batch.ids, batch.feats, batch.labels))
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.labels.reshape(-1))


def make_task(seed, n=4, length=6):
    g = torch.Generator().manual_seed(seed)
    def part():
        ids = torch.randint(4, 90, (n, length), generator=g)
        return SimpleNamespace(ids=ids, feats=torch.randn(n, 8, generator=g, dtype=torch.float64), labels=ids.clone())
    return SimpleNamespace(support=part(), query=part())


@pytest.fixture(scope="module")
def model():
    return PrefixModel().double()


def test_only_fusion_is_trainable(model):
    assert list(trainable_params(model)) == ["fusion.0.weight", "fusion.0.bias", "fusion.2.weight", "fusion.2.bias"]


@pytest.mark.parametrize("algo", ["maml", "fomaml", "metasgd"])
def test_backends_same_meta_gradient(model, algo):
    task = make_task(0)
    cfg = MetaConfig(algorithm=algo, inner_steps=2, inner_lr=0.5, multi_step_loss=(0.4, 0.6) if algo == "fomaml" else None)
    ours = meta_gradient(model, task, cfg, loss_fn, "torch")
    theirs = meta_gradient(model, task, cfg, loss_fn, "learn2learn")
    assert set(ours) == set(theirs)
    for n in ours:
        assert ours[n].abs().max() > 0, n
        torch.testing.assert_close(ours[n], theirs[n], atol=1e-5, rtol=1e-5)


def test_second_order_differs_from_first_order(model):
    task = make_task(1)
    so = meta_gradient(model, task, MetaConfig(algorithm="maml", inner_steps=2, inner_lr=0.5), loss_fn)
    fo = meta_gradient(model, task, MetaConfig(algorithm="fomaml", inner_steps=2, inner_lr=0.5), loss_fn)
    assert max((so[n] - fo[n]).abs().max().item() for n in so) > 1e-6


def test_second_order_matches_finite_differences(model):
    "The MAML meta-gradient is the true gradient of the post-adaptation query loss (not the first-order one)."
    task = make_task(2)
    cfg = MetaConfig(algorithm="maml", inner_steps=1, inner_lr=0.5)
    so = meta_gradient(model, task, cfg, loss_fn)
    fo = meta_gradient(model, task, MetaConfig(algorithm="fomaml", inner_steps=1, inner_lr=0.5), loss_fn)
    name = "fusion.0.weight"
    diff = (so[name] - fo[name]).abs()
    idx = tuple(int(i) for i in torch.unravel_index(diff.argmax(), diff.shape))
    p = trainable_params(model)
    def post(delta):  # query loss after one exact inner step, with one weight moved by delta
        with torch.no_grad(): p[name][idx] += delta
        q = {n: t.detach().requires_grad_() for n, t in p.items()}
        gr = torch.autograd.grad(loss_fn(model, q, task.support), list(q.values()))
        a = {n: t - cfg.inner_lr * d for (n, t), d in zip(q.items(), gr)}
        out = loss_fn(model, a, task.query).item()
        with torch.no_grad(): p[name][idx] -= delta
        return out
    eps = 1e-3  # LLaMA's RMSNorm computes in float32, so tiny steps are noisy
    fd = (post(eps) - post(-eps)) / (2 * eps)
    assert abs(fd - so[name][idx].item()) < 0.1 * diff[idx].item(), (fd, so[name][idx].item(), fo[name][idx].item())


def test_learner_step_both_backends_same_update():
    "One AdamW meta-step with each backend moves the weights identically."
    out = {}
    for backend in ("torch", "learn2learn"):
        m = PrefixModel().double()
        ml = MetaLearner(m, MetaConfig(algorithm="metasgd", inner_steps=1, inner_lr=0.1, outer_lr=1e-2, backend=backend))
        ml.step([make_task(3), make_task(4)], loss_fn)
        out[backend] = {n: p.detach().clone() for n, p in trainable_params(m).items()} | ml.extra_state()
    for n in out["torch"]:
        torch.testing.assert_close(out["torch"][n], out["learn2learn"][n], atol=1e-6, rtol=1e-6)


def test_trainer_micro_batches_give_the_same_meta_gradient(tmp_path):
    "On the real ECGLanguageModel: FOMAML over micro-batches equals the whole-set meta-gradient; both backends agree."
    import os
    from pathlib import Path
    from ecgmeta.episodes import EpisodeSampler
    from ecgmeta.meta import FeatureCache
    from ecgmeta.trainer import build_data, build_model, load_config, make_loss_fn, prepare_task
    data_dir = Path(os.environ.get("ECGMETA_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    cfg = load_config("meta_tiny", [f"data_dir={data_dir}", f"ecg_cache_dir={tmp_path}"])
    data, model = build_data(cfg), build_model(cfg)
    ep = EpisodeSampler(data.train, n_way=2, k_shot=2, q_query=2, seed=0).sample()
    cache = FeatureCache(lambda s, m: model.encode_ecgs(s, m))
    whole, parts = prepare_task(model, ep, data.dataset, cache), prepare_task(model, ep, data.dataset, cache, micro_batch=3)
    assert len(parts.support) == 2
    loss_fn = make_loss_fn()
    c = MetaConfig(algorithm="fomaml", inner_steps=2, inner_lr=0.5)
    ga, gb = meta_gradient(model, whole, c, loss_fn), meta_gradient(model, parts, c, loss_fn)
    gl = meta_gradient(model, whole, c, loss_fn, "learn2learn")
    for n in ga:
        torch.testing.assert_close(ga[n], gb[n], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(ga[n], gl[n], atol=1e-5, rtol=1e-4)
    assert set(ga) == set(trainable_params(model)) and all(n.startswith("fusion.") for n in ga)


def test_learn2learn_backend_refuses_a_proto_fusion():
    "A 'proto' fusion sets fast weights from the support before the inner loop; learn2learn's clone/adapt cannot, so say so."
    from ecgmeta.fusion import ECGLanguageModel, make_fusion
    from ecgmeta.meta import MetaConfigError
    llm, tok = tiny_llm(seed=1)
    model = ECGLanguageModel(llm, tok, None, make_fusion("proto", 16, llm, n_queries=2))
    with pytest.raises(MetaConfigError, match="use backend='torch'"):
        MetaLearner(model, MetaConfig(algorithm="fomaml", backend="learn2learn"))
