"Fast tests of `ecgmeta.fusion` with tiny random LLaMA / Gemma3 models and a small real `ECGEncoder`."
import json

import pytest
import torch
import torch.nn.functional as F

from ecgmeta.data import ECGMetaError
from ecgmeta.encoder import ECGEncoder, ECGEncoderConfig
from ecgmeta.fusion import (ECGFusion, ECGLanguageModel, ECGLMConfig, ECGPromptError, FusionBatch, FusionConfig,
                            FusionWidthError, LoraSpec, make_fusion)
from ecgmeta.llm import tiny_llm, tiny_tokenizer

QS = ["Is there baseline drift?", "Which of the two ECGs is abnormal?", "Does this ECG show static noise?"]
NS = [1, 2, 1]
ANS = ["no", "the second one", "yes"]


def _encoder(seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ECGEncoder(ECGEncoderConfig(hidden_size=32, num_layers=1, num_heads=2, lead_dim=16,
                                           stem_channels=(8, 16), dropout=0.0))


def _model(arch="llama", kind="mlp", lora=None, chat=True, pooled=False, seed=0, init=0.02):
    llm, tok = tiny_llm(arch, tokenizer=tiny_tokenizer(chat=chat), seed=seed, initializer_range=init)
    enc = _encoder()
    fu = make_fusion(kind, 32, llm, n_tokens=20, n_queries=4, d_hidden=32)
    return ECGLanguageModel(llm, tok, enc, fu, ECGLMConfig(f"tiny-{arch}", lora=lora, pooled=pooled))


def _signal(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 12, 1000, generator=g)


@pytest.fixture(scope="module")
def lm():
    return _model()


@pytest.fixture(scope="module")
def feats(lm):
    return lm.encode_ecgs(_signal(4))


@pytest.mark.parametrize("arch,chat", [("llama", True), ("gemma3", False)])
def test_loss_only_over_answer_tokens(arch, chat):
    m = _model(arch, chat=chat)
    b = m.build_batch(QS, NS, ANS)
    f = m.encode_ecgs(_signal(4))
    out, full = m(b, ecg_features=f), m(b, ecg_features=f, all_logits=True)
    lab = b.labels[:, 1:]
    ref = F.cross_entropy(full.logits[:, :-1][lab != -100], lab[lab != -100])
    torch.testing.assert_close(out.loss, ref, atol=1e-5, rtol=1e-5)
    # answer tokens + EOS per row; no BOS, no prompt token is scored
    tok = m.tokenizer
    n_ans = sum(len(tok(a if m.chat else " " + a, add_special_tokens=False).input_ids) + 1 for a in ANS)
    assert out.n_answer_tokens == n_ans
    for i, a in enumerate(ANS):
        ids = b.labels[i][b.labels[i] != -100].tolist()
        assert ids[-1] == tok.eos_token_id and tok.bos_token_id not in ids
        assert tok.decode(ids[:-1]).strip() == a
    # changing a prompt token does not change which tokens are scored; changing the answer changes the loss
    b2 = m.build_batch(QS, NS, ["yes", "the first one", "no"])
    assert not torch.isclose(m(b2, ecg_features=f).loss, out.loss)


def test_prompt_layout_question_before_ecg(lm):
    b = lm.build_batch(QS, NS, ANS)
    for i in range(len(QS)):
        ids = b.input_ids[i][b.attention_mask[i].bool()]
        pos = b.ecg_positions[i][b.attention_mask[i].bool()].nonzero().flatten()
        assert len(pos) == NS[i] * 20 and (pos.diff() == 1).all()  # one contiguous run of ECG positions
        text_before = lm.tokenizer.decode(ids[:pos[0]])
        assert QS[i] in text_before and "<|user|>" in text_before  # chat template, question first
        first_answer = (b.labels[i] != -100).nonzero().flatten()[0]
        assert first_answer > pos[-1]


def test_masked_scatter_several_ecgs_in_prompt_order(lm, feats):
    b = lm.build_batch(QS, NS, ANS)
    x = lm.inputs_embeds(b, feats)
    fused = lm.fusion(feats)  # (4, 20, d)
    got = x[b.ecg_positions].view(4, 20, -1)
    torch.testing.assert_close(got, fused)
    # the second prompt holds ECGs 1 and 2, in that order
    row = x[1][b.ecg_positions[1]].view(2, 20, -1)
    torch.testing.assert_close(row, fused[1:3])
    # non-ECG positions are the LLM's own token embeddings
    emb = lm.llm.get_input_embeddings()(b.input_ids.masked_fill(b.ecg_positions, lm.pad_id))
    torch.testing.assert_close(x[~b.ecg_positions], emb[~b.ecg_positions])


def test_embedding_not_resized_and_placeholder_atomic(lm):
    n_emb = lm.llm.get_input_embeddings().num_embeddings
    assert lm.ecg_token_id >= n_emb  # new id beyond the frozen matrix, never looked up
    assert lm.tokenizer("a <ecg> b", add_special_tokens=False).input_ids.count(lm.ecg_token_id) == 1


def test_explicit_placeholders_in_question(lm, feats):
    b1 = lm.build_batch(["Compare <ecg> with <ecg>: which is abnormal?"], [2], ["none"])
    pos = b1.ecg_positions[0].nonzero().flatten()
    assert len(pos) == 40 and (pos.diff() > 1).any()  # two separate runs
    assert lm(b1, ecg_features=feats[:2]).loss.isfinite()


def test_padding_does_not_leak(lm, feats):
    b = lm.build_batch(QS, NS, ANS)
    out = lm(b, ecg_features=feats)
    starts = [0, 1, 3]
    per = []
    for i in range(3):
        bi = lm.build_batch([QS[i]], [NS[i]], [ANS[i]])
        oi = lm(bi, ecg_features=feats[starts[i]:starts[i] + NS[i]])
        per.append((oi.loss * oi.n_answer_tokens, oi.n_answer_tokens))
    torch.testing.assert_close(out.loss, sum(l for l, _ in per) / sum(n for _, n in per), atol=1e-5, rtol=1e-5)
    # left padding gives the same loss as right padding (positions follow the attention mask)
    bl = lm.build_batch(QS, NS, ANS, padding_side="left")
    assert bl.padding_side == "left" and (bl.attention_mask[:, -1] == 1).all()
    torch.testing.assert_close(lm(bl, ecg_features=feats).loss, out.loss, atol=1e-5, rtol=1e-5)


def test_signal_and_features_agree(lm, feats):
    b = lm.build_batch(QS, NS, ANS)
    torch.testing.assert_close(lm(b, ecg_signal=_signal(4)).loss, lm(b, ecg_features=feats).loss)
    assert not torch.is_grad_enabled() or not lm.encode_ecgs(_signal(1)).requires_grad  # frozen encoder: no graph


def test_batch_to_device(lm):
    b = lm.build_batch(QS, NS, ANS).to("cpu")
    assert isinstance(b, FusionBatch) and len(b) == 3 and b.n_ecgs == (1, 2, 1)
    g = lm.build_batch(QS, NS)
    assert g.labels is None and g.padding_side == "left"


def test_functional_call_second_order(feats):
    m = _model(kind="resampler")
    f = m.encode_ecgs(_signal(4))
    b = m.build_batch(QS, NS, ANS)
    params = m.trainable_parameters()
    assert params and all(n.startswith("fusion.") for n in params)
    loss = torch.func.functional_call(m, params, (b,), {"ecg_features": f}).loss
    torch.testing.assert_close(loss, m(b, ecg_features=f).loss)
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
    fast = {n: p - 0.1 * g for (n, p), g in zip(params.items(), grads)}
    outer = torch.func.functional_call(m, fast, (b,), {"ecg_features": f}).loss
    meta = torch.autograd.grad(outer, list(params.values()))
    assert all(g is not None and torch.isfinite(g).all() for g in meta)
    assert any(float(g.abs().sum()) > 0 for g in meta)
    # nothing in the LLM or the encoder trains
    assert not any(p.requires_grad for p in m.llm.parameters())
    assert not any(p.requires_grad for p in m.encoder.parameters())


def test_head_parameter_names():
    for kind in ("mlp", "prefix", "resampler"):
        m = _model(kind=kind)
        names = m.head_parameter_names()
        assert names == ["fusion.head.weight", "fusion.head.bias"]
        assert set(names) <= set(m.trainable_parameters())


@pytest.mark.parametrize("kind,n_pos", [("mlp", 20), ("prefix", 4), ("resampler", 4)])
def test_fusion_kinds_positions(kind, n_pos):
    m = _model(kind=kind)
    assert m.n_ecg_tokens == n_pos
    b = m.build_batch(QS, NS, ANS)
    assert int(b.ecg_positions.sum()) == 4 * n_pos
    assert m(b, ecg_signal=_signal(4)).loss.isfinite()


def test_pooled_single_token():
    m = _model(pooled=True)
    assert m.n_ecg_tokens == 1
    f = m.encode_ecgs(_signal(4))
    assert f.shape == (4, 1, 32)
    b = m.build_batch(QS, NS, ANS)
    assert int(b.ecg_positions.sum()) == 4 and m(b, ecg_features=f).loss.isfinite()


def test_lora_on_off(feats):
    plain = _model()
    lo = _model(lora=LoraSpec(r=4, target_modules=("q_proj", "k_proj", "v_proj")))
    names = list(lo.trainable_parameters())
    lora_names = [n for n in names if "lora_" in n]
    assert len(lora_names) == 2 * 3 * 2  # layers x modules x (A, B)
    assert all(n.startswith("fusion.") or "lora_" in n for n in names)
    assert not any("lora_" in n for n in plain.trainable_parameters())
    b = plain.build_batch(QS, NS, ANS)
    lo.fusion.load_state_dict(plain.fusion.state_dict())
    torch.testing.assert_close(lo(b, ecg_features=feats).loss, plain(b, ecg_features=feats).loss)  # B = 0 at start
    params = lo.trainable_parameters()
    loss = torch.func.functional_call(lo, params, (b,), {"ecg_features": feats}).loss
    grads = dict(zip(params, torch.autograd.grad(loss, list(params.values()))))
    assert any(float(grads[n].abs().sum()) > 0 for n in lora_names if "lora_B" in n)
    lo.train()
    assert not lo.llm.training and lo.fusion.training and not lo.encoder.training


@pytest.mark.parametrize("kind,lora", [("mlp", None), ("resampler", LoraSpec(r=4)), ("prefix", None)])
def test_save_load_identical(tmp_path, kind, lora):
    m = _model(kind=kind, lora=lora)
    with torch.no_grad():
        for p in m.trainable_parameters().values(): p.add_(0.05 * torch.randn_like(p))
    sig = _signal(4)
    b = m.build_batch(QS, NS, ANS)
    ref = m(b, ecg_signal=sig)
    m.save_pretrained(tmp_path)
    meta = json.loads((tmp_path / "ecglm_config.json").read_text())
    assert meta["config"]["llm_name"] == "tiny-llama"
    assert (tmp_path / "adapter").exists() == (lora is not None)
    saved = {p.name for p in tmp_path.rglob("*.safetensors")}
    assert all("model" in n or "adapter" in n for n in saved)
    total = sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file())
    llm_bytes = sum(p.numel() * 4 for p in m.llm.parameters() if not p.requires_grad)
    assert total < llm_bytes  # the LLM's weights are not written
    llm2, tok2 = tiny_llm("llama", tokenizer=tiny_tokenizer())
    back = ECGLanguageModel.from_pretrained(tmp_path, llm=llm2, tokenizer=tok2)
    got = back(b, ecg_signal=sig)
    torch.testing.assert_close(got.loss, ref.loss, atol=0, rtol=0)
    torch.testing.assert_close(got.logits, ref.logits, atol=0, rtol=0)
    assert back.generate(QS, NS, ecg_signal=sig, max_new_tokens=5) == m.generate(QS, NS, ecg_signal=sig, max_new_tokens=5)


def test_generate_learns_answer_and_stops_at_eos():
    m = _model(kind="resampler", lora=LoraSpec(r=8, alpha=16), init=0.2)  # init 0.2: logits can be confident
    f = m.encode_ecgs(_signal(2))
    qs, ns, ans = ["Is there baseline drift?", "Is there static noise?"], [1, 1], ["yes", "no"]
    b = m.build_batch(qs, ns, ans)
    opt = torch.optim.Adam(m.trainable_parameters().values(), lr=2e-2)
    m.train()
    first = None
    for _ in range(25):
        loss = m(b, ecg_features=f).loss
        first = first if first is not None else loss.item()
        opt.zero_grad(); loss.backward(); opt.step()
    m.eval()
    assert loss.item() < 0.2 * first
    out = m.generate(qs, ns, ecg_features=f, max_new_tokens=12)
    assert out == ans  # decoding stops at EOS: 12 tokens were allowed, 2-3 used
    s = m.score_candidates(qs, ns, [["yes", "no", "maybe"], ["yes", "no", "maybe"]], ecg_features=f)
    assert s.best() == [0, 1]


def test_score_candidates_matches_loss_and_batching(lm, feats):
    cands = [["yes", "no"], ["the first one", "the second one", "neither"], ["yes", "no"]]
    s = lm.score_candidates(QS, NS, cands, ecg_features=feats)
    s1 = lm.score_candidates(QS, NS, cands, ecg_features=feats, batch_size=1)
    for a, b_ in zip(s.sum, s1.sum):
        torch.testing.assert_close(torch.tensor(a), torch.tensor(b_), atol=1e-4, rtol=1e-4)
    b = lm.build_batch([QS[1]], [2], ["neither"])
    o = lm(b, ecg_features=feats[1:3])
    assert s.n_tokens[1][2] == o.n_answer_tokens
    assert abs(s.sum[1][2] + o.loss.item() * o.n_answer_tokens) < 1e-3
    assert abs(s.mean[1][2] + o.loss.item()) < 1e-4
    assert all(v < 0 for r in s.sum for v in r)


def test_generate_batched_equals_single(lm, feats):
    many = lm.generate(QS, NS, ecg_features=feats, max_new_tokens=6)
    single = [lm.generate([QS[i]], [NS[i]], ecg_features=feats[s:s + NS[i]], max_new_tokens=6)[0]
              for i, s in zip(range(3), [0, 1, 3])]
    assert many == single
    assert all(isinstance(a, str) for a in many)


def test_gemma3_generate_and_lora(tmp_path):
    m = _model("gemma3", kind="resampler", lora=LoraSpec(r=4), chat=False)
    f = m.encode_ecgs(_signal(4))
    assert len(m.generate(QS, NS, ecg_features=f, max_new_tokens=4)) == 3
    b = m.build_batch(QS, NS, ANS)
    m.save_pretrained(tmp_path)
    back = ECGLanguageModel.from_pretrained(tmp_path, llm=tiny_llm("gemma3", tokenizer=tiny_tokenizer(chat=False))[0],
                                            tokenizer=tiny_tokenizer(chat=False))
    torch.testing.assert_close(back(b, ecg_features=f).loss, m(b, ecg_features=f).loss)


# ---- bad input ------------------------------------------------------------------------------------
def test_errors_ecgs_without_placeholders_and_reverse(lm, feats):
    b = lm.build_batch(QS, NS, ANS)
    with pytest.raises(ECGPromptError, match="4 <ecg> placeholders but no ECGs"): lm(b)
    nb = lm.build_batch(["Hello?"], [0], ["hi"])
    with pytest.raises(ECGPromptError, match="1 ECGs were given but the prompts have no <ecg>"):
        lm(nb, ecg_features=feats[:1])
    assert lm(nb).loss.isfinite()  # a text-only prompt without ECGs is fine


def test_errors_count_mismatch_names_both(lm, feats):
    b = lm.build_batch(QS, NS, ANS)
    with pytest.raises(ECGPromptError, match="4 <ecg> placeholders but 3 ECGs"): lm(b, ecg_features=feats[:3])
    with pytest.raises(ECGPromptError, match="2 <ecg> placeholders but n_ecgs = 1"):
        lm.build_batch(["<ecg> or <ecg>?"], [1])
    with pytest.raises(ECGPromptError, match="3 questions, 2 n_ecgs"): lm.build_batch(QS, [1, 1])
    # features with a different token count than the batch was built for
    with pytest.raises(ECGPromptError, match=r"80 ECG positions .* 4 ECGs x 10 tokens = 40"):
        lm(b, ecg_features=feats[:, :10])
    with pytest.raises(ECGMetaError, match="width 32"): lm(b, ecg_features=torch.randn(4, 20, 16))


def test_errors_too_long(lm):
    with pytest.raises(ECGPromptError, match="max_answer_tokens = 64"): lm.build_batch(["Q?"], [1], ["x" * 200])
    m = ECGLanguageModel(lm.llm, tiny_tokenizer(), None, lm.fusion, ECGLMConfig("tiny", max_length=40))
    with pytest.raises(ECGPromptError, match="max_length = 40"): m.build_batch(["A long question?"], [1], ["yes"])
    with pytest.raises(ECGPromptError, match="no encoder"): m.encode_ecgs(_signal(1))


def test_errors_width_mismatch(tmp_path, lm):
    with pytest.raises(FusionWidthError, match="emits 128-wide embeddings but the LLM .* expects 64"):
        ECGLanguageModel(lm.llm, tiny_tokenizer(), None, ECGFusion(FusionConfig(d_enc=32, d_llm=128, n_tokens=20)))
    with pytest.raises(FusionWidthError, match="expects 48-wide encoder tokens but the encoder emits 32"):
        ECGLanguageModel(lm.llm, tiny_tokenizer(), _encoder(), ECGFusion(FusionConfig(d_enc=48, d_llm=64, n_tokens=20)))
    with pytest.raises(ECGPromptError, match="n_tokens"):
        ECGLanguageModel(lm.llm, tiny_tokenizer(), None, ECGFusion(FusionConfig(d_enc=32, d_llm=64)))
    lm.save_pretrained(tmp_path)
    big, tok = tiny_llm("llama", hidden_size=96)
    with pytest.raises(FusionWidthError, match="expects 96.*trained with the LLM 'tiny-llama'"):
        ECGLanguageModel.from_pretrained(tmp_path, llm=big, tokenizer=tok)
    with pytest.raises(ECGMetaError, match="ecglm_config.json"):
        ECGLanguageModel.from_pretrained(tmp_path / "nope", llm=big, tokenizer=tok)
    with pytest.raises(ECGMetaError, match="expected FusionConfig.kind"): FusionConfig(kind="qformer")


def test_fusion_config_roundtrip(tmp_path):
    fu = ECGFusion(FusionConfig(kind="prefix", d_enc=32, d_llm=64, n_queries=3, n_layers=2, d_hidden=32))
    fu.save_pretrained(tmp_path)
    back = ECGFusion.from_pretrained(tmp_path)
    assert back.config.kind == "prefix" and back.config.n_queries == 3 and len(back.blocks) == 2
    x = torch.randn(2, 7, 32)
    torch.testing.assert_close(back(x), fu(x))
