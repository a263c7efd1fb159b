"The prompt-prefix key/value cache of `ECGLanguageModel` gives the same loss, logits and gradients as the plain forward."
import pytest
import torch
from torch.func import functional_call

from ecgmeta.encoder import ECGEncoder, ECGEncoderConfig
from ecgmeta.fusion import ECGLanguageModel, ECGLMConfig, LoraSpec, PrefixCache, PrefixCacheError, make_fusion
from ecgmeta.llm import tiny_llm, tiny_tokenizer

# prompts of different lengths; one with its placeholders in the middle of the question, one with two ECGs
QS = ["Is there baseline drift?", "Which of the two ECGs shows a longer QT interval than usual?",
      "Noise?", "Does <ecg> show an anterior infarction, or is it normal?"]
NS = [1, 2, 1, 1]
ANS = ["no", "the second one", "yes", "normal"]


def _model(arch, chat, kind="resampler", attn="eager", lora=None):
    llm, tok = tiny_llm(arch, tokenizer=tiny_tokenizer(chat=chat), seed=1, initializer_range=0.2,
                        attn_implementation=attn)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        enc = ECGEncoder(ECGEncoderConfig(hidden_size=32, num_layers=1, num_heads=2, lead_dim=16, stem_channels=(8, 16)))
        fu = make_fusion(kind, 32, llm, n_tokens=20, n_queries=4, d_hidden=32, out_std=0.5)
    return ECGLanguageModel(llm, tok, enc, fu, ECGLMConfig(f"tiny-{arch}", lora=lora))


def _feats(m, n=5):
    return m.encode_ecgs(torch.randn(n, 12, 1000, generator=torch.Generator().manual_seed(0)))


def _answer_logits(out, labels):
    lab = labels[:, out.logits_start + 1:]
    return out.logits[:, :-1][lab != -100]


@pytest.mark.parametrize("arch,chat,kind,attn", [("llama", True, "resampler", "eager"), ("llama", False, "mlp", "eager"),
                                                 ("gemma3", True, "prefix", "eager"), ("gemma3", False, "resampler", "eager"),
                                                 ("llama", True, "resampler", "sdpa")])
def test_cached_equals_uncached(arch, chat, kind, attn):
    m = _model(arch, chat, kind, attn)
    b, f = m.build_batch(QS, NS, ANS), _feats(m)
    pc = m.precompute_prefix(b)
    assert isinstance(pc, PrefixCache) and len(pc) == 4
    assert pc.n_prefix_tokens > 0 and pc.suffix.input_ids.shape[1] < b.input_ids.shape[1]
    assert all(not k.requires_grad and not v.requires_grad for k, v in pc.key_values)
    # prefixes end exactly at the first ECG position, and differ in length across rows
    first_ecg = b.ecg_positions.float().argmax(1)
    assert pc.prefix_lengths.tolist() == first_ecg.tolist() and len(set(pc.prefix_lengths.tolist())) > 1
    ref, got = m(b, ecg_features=f), m(b, ecg_features=f, prefix_cache=pc)
    torch.testing.assert_close(got.loss, ref.loss, atol=1e-5, rtol=1e-5)
    assert got.n_answer_tokens == ref.n_answer_tokens
    torch.testing.assert_close(_answer_logits(got, pc.suffix.labels), _answer_logits(ref, b.labels), atol=1e-4, rtol=1e-4)
    # all logits: the suffix positions of each row equal the full forward's
    full, fullc = m(b, ecg_features=f, all_logits=True), m(b, ecg_features=f, all_logits=True, prefix_cache=pc)
    for i in range(4):
        p, n = int(pc.prefix_lengths[i]), int(pc.suffix.attention_mask[i].sum())
        torch.testing.assert_close(fullc.logits[i, :n], full.logits[i, p:p + n], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("arch,chat", [("llama", True), ("gemma3", False)])
def test_gradients_first_and_second_order(arch, chat):
    m = _model(arch, chat)
    b, f = m.build_batch(QS, NS, ANS), _feats(m)
    pc = m.precompute_prefix(b)
    kv0 = [(k.clone(), v.clone()) for k, v in pc.key_values]
    params = m.trainable_parameters()
    names = list(params)

    def grads(**kw):
        loss = functional_call(m, params, (b,), {"ecg_features": f, **kw}).loss
        g = torch.autograd.grad(loss, [params[n] for n in names], create_graph=True)
        gg = torch.autograd.grad(sum((x * x).sum() for x in g), [params[n] for n in names], allow_unused=True)
        return g, gg

    (g1, h1), (g2, h2) = grads(), grads(prefix_cache=pc)
    for n, a, c in zip(names, g1, g2): torch.testing.assert_close(c, a, atol=1e-5, rtol=1e-4, msg=n)
    for n, a, c in zip(names, h1, h2):
        if a is None: assert c is None; continue
        torch.testing.assert_close(c, a, atol=1e-5, rtol=1e-4, msg=n)
    # an inner-loop-like sequence of calls reuses the same cache: it is never mutated
    for (k, v), (k0, v0) in zip(pc.key_values, kv0):
        assert torch.equal(k, k0) and torch.equal(v, v0)
    torch.testing.assert_close(m(b, ecg_features=f, prefix_cache=pc).loss, m(b, ecg_features=f).loss, atol=1e-5, rtol=1e-5)


def test_micro_batch_caches_match_whole_batch():
    m = _model("llama", True)
    b, f = m.build_batch(QS, NS, ANS), _feats(m)
    from dataclasses import replace
    part = replace(b, input_ids=b.input_ids[2:], attention_mask=b.attention_mask[2:], ecg_positions=b.ecg_positions[2:],
                   labels=b.labels[2:], n_ecgs=b.n_ecgs[2:])
    torch.testing.assert_close(m(part, ecg_features=f[3:], prefix_cache=m.precompute_prefix(part)).loss,
                               m(part, ecg_features=f[3:]).loss, atol=1e-5, rtol=1e-5)


def test_errors():
    m = _model("llama", True, lora=LoraSpec(r=2))
    b = m.build_batch(QS, NS, ANS)
    with pytest.raises(PrefixCacheError, match="needs a frozen LLM"): m.precompute_prefix(b)
    m2 = _model("llama", True)
    pc = m2.precompute_prefix(m2.build_batch(QS[:2], NS[:2], ANS[:2]))
    with pytest.raises(PrefixCacheError, match="holds 2 rows"):
        m2(m2.build_batch(QS, NS, ANS), ecg_features=_feats(m2), prefix_cache=pc)
