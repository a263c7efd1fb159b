"`ecgmeta demo` wiring with a tiny configuration (tiny LLM, random encoder), and the shipped demo config."
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from ecgmeta.cli import main
from ecgmeta.evaluate import DEFAULT_METHODS, DemoConfig, EvalConfig, _default_demo_config

DATA = Path(os.environ.get("ECGMETA_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def test_shipped_demo_config_is_valid():
    "The packaged demo config parses into typed configs and targets SmolLM2, the shipped encoder and 5-way 5-shot."
    from ecgmeta.trainer import config_from_dict
    cfg = DemoConfig.load()
    assert isinstance(cfg.eval, EvalConfig)
    tc = config_from_dict({**cfg.train, "data_dir": str(DATA), "out_dir": "x"})
    assert tc.llm == "smollm2-135m" and tc.encoder == "ecg-encoder-ptbxl-small"
    assert (5, 5) in [(n, k) for n in cfg.eval.n_way for k in cfg.eval.k_shot]
    assert cfg.eval.contrastive and set(DEFAULT_METHODS) <= set(cfg.eval.methods)
    assert tc.meta.first_order and tc.meta.inner_steps <= 2


def test_demo_config_errors(tmp_path):
    from ecgmeta.data import ECGMetaError
    with pytest.raises(ECGMetaError, match="does not exist"):
        DemoConfig.load(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"; bad.write_text(json.dumps({"train": {}, "eval": {"n_wya": [5]}}))
    with pytest.raises(ECGMetaError, match="bad 'eval' section"):
        DemoConfig.load(bad)


def test_demo_tiny_end_to_end(tmp_path, capsys):
    cfg = {"train": dict(ecg_cache_dir=str(tmp_path / "ecgs"), llm="tiny-llama", encoder="random", fusion="resampler",
                         fusion_tokens=2, question_types=["single-verify", "single-query"], max_classes=4, n_way=2, k_shot=1,
                         q_query=1, meta=dict(algorithm="fomaml", inner_steps=1, inner_lr=0.01, tasks_per_batch=1),
                         meta_steps=2, val_every=2, val_episodes=1, checkpoint_every=2),
           "eval": dict(n_way=[2], k_shot=[1], q_query=1, episodes=1), "report_reserve_s": 5, "ecgqa": False}
    path = tmp_path / "demo.json"; path.write_text(json.dumps(cfg))
    out = tmp_path / "demo"
    rc = main(["demo", "--data", str(DATA), "--out", str(out), "--config", str(path), "--budget-minutes", "10", "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "demo wrote" in printed and "exact-match accuracy" in printed
    assert (out / "run" / "model" / "ecglm_config.json").exists() and (out / "run" / "metrics.jsonl").exists()
    md = (out / "report.md").read_text()
    assert "## Training curve" in md and "## Example meta-test episodes" in md and "contrastive" in md
    recs = pd.read_csv(out / "records.csv")
    assert set(DEFAULT_METHODS) <= set(recs.method)
    assert set(recs.question_type) <= {"single-verify", "single-query"} and len(set(recs.question_type)) >= 1
    assert recs.text_answerable.dtype == bool and "left out of tables and targets" in md
    # the same command again, with a budget far too small: the budget only warns (counts, not the clock, fix what is run),
    # the numbers are identical, and the earlier demo is moved aside, never overwritten
    rc = main(["demo", "--data", str(DATA), "--out", str(out), "--config", str(path), "--budget-minutes", "0.001", "--no-progress"])
    assert rc == 0
    earlier = list(out.glob("earlier-*"))
    assert len(earlier) == 1 and (earlier[0] / "report.md").read_text() == md and (earlier[0] / "run" / "metrics.jsonl").exists()
    again = pd.read_csv(out / "records.csv")
    pd.testing.assert_frame_equal(recs, again)
    assert "earlier demo" in (out / "report.md").read_text()
