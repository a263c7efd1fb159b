"""The CUDA paths give what the CPU gives: encoder (float32 and bfloat16), the proto-fusion LLM (loss, prefix
cache, scoring, generation), the meta-learner's updates and evaluation's shared-prefix scorer.

Marked `cuda`: the default suite (`make test`) deselects them; run with `make test-cuda` or
`python -m pytest -m cuda tests/test_cuda_paths.py` on a machine with a GPU. Without one they are skipped.
"""
from types import SimpleNamespace

import pytest
import torch
from torch.func import functional_call

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

from ecgmeta.encoder import load_pretrained_encoder  # noqa: E402
from ecgmeta.fusion import AnswerSlots, ECGLanguageModel, ECGLMConfig, make_fusion  # noqa: E402
from ecgmeta.llm import tiny_llm, tiny_tokenizer  # noqa: E402
from ecgmeta.meta import MetaConfig, MetaLearner, trainable_params  # noqa: E402
from test_meta_backends import PrefixModel, loss_fn, make_task  # noqa: E402  (the tiny model the backends are tested on)


@pytest.fixture(autouse=True)
def _exact_matmul():
    "No TF32 on the GPU, so CPU and CUDA differ only by summation order."
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def _signal(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 12, 1000, generator=g)


def test_shipped_encoder_on_cuda_matches_cpu_in_float32_and_bfloat16():
    x, m = _signal(4), torch.ones(4, 12, dtype=torch.bool)
    m[2, 6:] = False  # limb leads only
    m[3, 1:] = False  # lead I only
    cpu = load_pretrained_encoder()
    gpu = load_pretrained_encoder(device="cuda")
    with torch.no_grad():
        ref = cpu(x, m)
        out = gpu(x.cuda(), m.cuda())
        with torch.autocast("cuda", dtype=torch.bfloat16):
            half = gpu(x.cuda(), m.cuda())
    torch.testing.assert_close(out.tokens.cpu(), ref.tokens, atol=2e-4, rtol=2e-4)
    torch.testing.assert_close(out.pooled.cpu(), ref.pooled, atol=2e-4, rtol=2e-4)
    cos = torch.nn.functional.cosine_similarity(half.pooled.float().cpu(), ref.pooled, dim=-1)
    assert cos.min() > 0.99, cos


def _proto_model(device):
    llm, tok = tiny_llm("llama", tokenizer=tiny_tokenizer(chat=True), seed=0)
    enc = load_pretrained_encoder()
    fu = make_fusion("proto", enc.config.hidden_size, llm, n_queries=4)
    return ECGLanguageModel(llm, tok, enc, fu, ECGLMConfig("tiny-llama")).to(device).eval()


def test_proto_language_model_on_cuda_matches_cpu():
    slots = AnswerSlots.from_pairs([("q1", "yes"), ("q1", "no"), ("q2", "lvh"), ("q2", "none")])
    qs, keys = ["does it show afib?", "does it show afib?", "which hypertrophy?", "which hypertrophy?"], ["q1", "q1", "q2", "q2"]
    ans = ["yes", "no", "lvh", "none"]
    res = {}
    for dev in ("cpu", "cuda"):
        torch.manual_seed(0)
        m = _proto_model(dev)
        feats = m.encode_ecgs(_signal(4).to(dev), torch.ones(4, 12, dtype=torch.bool, device=dev))
        m.fusion.fit_input_stats(feats)
        b = m.build_batch(qs, 1, ans, slots=slots, keys=keys).to(dev)
        p = m.episode_params(dict(m.trainable_parameters()), b, feats)
        loss = functional_call(m, p, (b,), {"ecg_features": feats}).loss
        cached = functional_call(m, p, (b,), {"ecg_features": feats, "prefix_cache": m.precompute_prefix(b)}).loss
        grad = torch.autograd.grad(loss, [m.fusion.proj.weight])[0]
        for k, v in p.items():
            if k.startswith("fusion.head"): getattr(m.fusion, k.split(".")[-1]).copy_(v.detach())
        with torch.no_grad():
            sc = m.score_candidates(qs, 1, [["yes", "no"], ["yes", "no"], ["lvh", "none"], ["lvh", "none"]],
                                    ecg_features=feats, slots=slots, keys=keys)
            gen = m.generate(qs, 1, ecg_features=feats, slots=slots, keys=keys, max_new_tokens=4)
        res[dev] = dict(loss=loss.item(), cached=cached.item(), grad=grad.cpu(), sc=torch.tensor(sc.sum), gen=gen,
                        w=p["fusion.head_w"].detach().cpu())
    c, g = res["cpu"], res["cuda"]
    assert abs(g["loss"] - c["loss"]) < 1e-4 and abs(g["cached"] - g["loss"]) < 1e-4
    # the encoder's features differ by about 1e-4 between devices (summation order), the prototypes with them
    torch.testing.assert_close(g["w"], c["w"], atol=2e-4, rtol=1e-3)
    torch.testing.assert_close(g["grad"], c["grad"], atol=2e-4, rtol=1e-2)
    torch.testing.assert_close(g["sc"], c["sc"], atol=1e-4, rtol=1e-4)
    assert g["gen"] == c["gen"]


def _task(seed, device):
    "`test_meta_backends.make_task` (float64 features there) in float32 on `device`."
    t = make_task(seed)
    move = lambda part: SimpleNamespace(ids=part.ids.to(device), feats=part.feats.float().to(device), labels=part.labels.to(device))
    return SimpleNamespace(support=move(t.support), query=move(t.query))


@pytest.mark.parametrize("algo", ["maml", "fomaml", "anil", "metasgd"])
def test_meta_learner_updates_on_cuda_match_cpu(algo):
    out = {}
    for dev in ("cpu", "cuda"):
        m = PrefixModel().to(dev)
        ml = MetaLearner(m, MetaConfig(algorithm=algo, inner_steps=2, inner_lr=0.3, outer_lr=1e-2), head_names=["fusion.2.weight", "fusion.2.bias"])
        for s in range(2): ml.step([_task(2 * s, dev), _task(2 * s + 1, dev)], loss_fn)
        out[dev] = {n: p.detach().cpu() for n, p in trainable_params(m).items()}
    moved = max((out["cuda"][n] - p.detach()).abs().max().item() for n, p in trainable_params(PrefixModel()).items())
    assert moved > 1e-3
    for n in out["cpu"]:
        torch.testing.assert_close(out["cuda"][n], out["cpu"][n], atol=1e-4, rtol=1e-3)


def test_shared_prefix_scorer_on_cuda_matches_cpu():
    from ecgmeta.evaluate import score_shared_prefix
    slots = AnswerSlots.from_pairs([("q1", "yes"), ("q1", "no")])
    res = {}
    for dev in ("cpu", "cuda"):
        m = _proto_model(dev)
        feats = m.encode_ecgs(_signal(3).to(dev), torch.ones(3, 12, dtype=torch.bool, device=dev))
        res[dev] = torch.as_tensor(score_shared_prefix(m, ["afib?", "noise?", "afib?"], [1, 1, 1], ["yes", "no", "none"],
                                                       feats, slots, ["q1", "q1", "q1"]))
    torch.testing.assert_close(res["cuda"], res["cpu"], atol=1e-4, rtol=1e-4)
