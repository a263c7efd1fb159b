"Real Gemma-3-270M (optional `gemma` extra), converted once from the split GGUF packages; slow."
import pytest
import torch

from ecgmeta.fusion import ECGLanguageModel, ECGLMConfig, make_fusion
from ecgmeta.llm import load_llm, offline_llm_dir


@pytest.mark.slow
def test_gemma3_270m_offline_fusion():
    llm, tok = load_llm("gemma3-270m")
    d = offline_llm_dir("gemma3-270m")
    assert (d / "model.safetensors").exists() and "quantization_config" not in (d / "config.json").read_text()
    assert type(llm).__name__ == "Gemma3ForCausalLM" and llm.config.hidden_size == 640
    # the converted weights model English: a natural sentence is far more likely than its tokens shuffled
    ids = tok("The heart pumps blood through the body, and an electrocardiogram records its electrical activity.",
              return_tensors="pt").input_ids
    shuffled = torch.cat([ids[:, :1], ids[:, 1:][:, torch.randperm(ids.shape[1] - 1, generator=torch.Generator().manual_seed(0))]], 1)
    with torch.no_grad():
        nll, nll_shuffled = llm(ids, labels=ids).loss.item(), llm(shuffled, labels=shuffled).loss.item()
    assert nll < 4.0 and nll_shuffled > nll + 2.0, (nll, nll_shuffled)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        fu = make_fusion("resampler", 32, llm, n_queries=4, d_hidden=64)
    m = ECGLanguageModel(llm, tok, None, fu, ECGLMConfig("gemma3-270m"))
    feats = torch.randn(3, 20, 32, generator=torch.Generator().manual_seed(0))
    qs = ["Does this ECG show baseline drift?", "Which ECG is abnormal?"]
    b = m.build_batch(qs, [1, 2], ["no", "the second"])
    assert m.ecg_token_id >= llm.get_input_embeddings().num_embeddings or m.ecg_token_id not in b.input_ids[~b.ecg_positions]
    o = m(b, ecg_features=feats)
    assert o.loss.isfinite() and o.n_answer_tokens == sum(
        len(tok(" " + a, add_special_tokens=False).input_ids) + 1 for a in ["no", "the second"])
    params = m.trainable_parameters()
    g = torch.autograd.grad(o.loss, list(params.values()))
    assert all(torch.isfinite(x).all() for x in g)
    gen = m.generate(qs, [1, 2], ecg_features=feats, max_new_tokens=4)
    assert len(gen) == 2
    s = m.score_candidates(qs[:1], 1, [["yes", "no"]], ecg_features=feats[:1])
    assert len(s.sum[0]) == 2 and all(v < 0 for v in s.sum[0])
