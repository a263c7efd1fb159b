"End to end: a tiny meta-training run, then `ecgmeta evaluate` on it; the report's structure and every baseline."
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from ecgmeta.cli import main
from ecgmeta.evaluate import DEFAULT_METHODS, EvalConfig, evaluate_run, load_run

DATA = Path(os.environ.get("ECGMETA_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
QTYPES = ["single-verify"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    "A one-step meta-training run with a tiny random LLaMA and a random small encoder."
    from ecgmeta.trainer import config_from_dict, meta_train
    root = tmp_path_factory.mktemp("evalrun")
    cfg = config_from_dict(dict(data_dir=str(DATA), out_dir=str(root / "run"), ecg_cache_dir=str(root / "ecgs"),
                                llm="tiny-llama", encoder="random", fusion="resampler", fusion_tokens=2,
                                question_types=QTYPES, max_classes=4, n_way=2, k_shot=1, q_query=1,
                                meta=dict(algorithm="fomaml", inner_steps=1, inner_lr=0.01, tasks_per_batch=1),
                                meta_steps=1, val_every=1, val_episodes=1, checkpoint_every=1))
    meta_train(cfg, progress=False, resume=False)
    return root


def test_evaluate_cli_end_to_end(tiny_run, tmp_path, capsys):
    qa = tmp_path / "mine.json"  # a user question file in ECG-QA format: ECG-QA's own fold-10 noise items
    from ecgmeta.data import PTBXL
    fold = PTBXL(DATA / "ptbxl").db.strat_fold.to_dict()
    raw = json.loads((DATA / "ecgqa/ptbxl/template/train/120000.json").read_text())
    raw = [d for d in raw if d["template_id"] == 28 and all(fold.get(e) == 10 for e in d["ecg_id"])]
    qa.write_text(json.dumps(raw))
    out = tmp_path / "eval"
    rc = main(["evaluate", "--model", str(tiny_run / "run"), "--data", str(DATA), "--out", str(out), "--n-way", "2",
               "--k-shot", "1", "--q-query", "1", "--episodes", "1", "--question-types", ",".join(QTYPES),
               "--lead-subsets", "I", "--snr", "10", "--qa", str(qa), "--length-bonus", "1", "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "evaluate wrote" in printed and str(out / "report.html") in printed
    for f in ("report.md", "report.html", "records.csv", "summary.csv", "summary.json"):
        assert (out / f).is_file(), f
    recs = pd.read_csv(out / "records.csv")
    sources = set(recs.source)
    assert any(s.startswith("generated") for s in sources)
    assert any(s.startswith("official ECG-QA") for s in sources)
    assert "question file mine.json" in sources
    main_src = next(s for s in sources if s.startswith("generated"))
    base = recs[(recs.source == main_src) & (recs.condition == "12 leads")]
    assert set(DEFAULT_METHODS) <= set(base.method), "every baseline and control must be in the records"
    assert set(base.question_type) == set(QTYPES)
    conds = set(recs[recs.source == main_src].condition)
    assert conds == {"12 leads", "lead I", "12 leads, SNR 10 dB"}
    # every method answers the same queries
    n = base.groupby("method").size()
    assert n.nunique() == 1
    md = (out / "report.md").read_text()
    for heading in ("## Run", "## How answers are scored", "## Results: generated", "### Accuracy per question type",
                    "### Per template", "### Lead subsets and noise", "## Results: official ECG-QA", "## Results: question file mine.json",
                    "## Training curve", "## Example meta-test episodes", "## Context: the paper's numbers"):
        assert heading in md, heading
    table = md.split("### Accuracy per question type", 1)[1].split("\n\n")[2]
    for m in DEFAULT_METHODS: assert f" {m} |" in table.splitlines()[0], m
    assert "84.6" in md and "77.3" in md and "69.6" in md
    assert "plus a length bonus of 1 nats per answer token" in md  # --length-bonus reached the config and the report (scoring: nbs/06_evaluate)
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3  # accuracy plot, conditions, training curve, episode plot
    assert (out / "figures").is_dir() and any((out / "figures").glob("*.png"))
    summary = json.loads((out / "summary.json").read_text())
    assert {"summary", "targets", "skipped", "seconds"} <= set(summary)


def test_evaluate_missing_model_is_a_clear_error(tmp_path):
    from ecgmeta.data import ECGMetaError
    with pytest.raises(ECGMetaError, match="no saved model"):
        load_run(tmp_path)


def test_metasgd_learned_rates_are_used_at_meta_test(tmp_path):
    "A Meta-SGD run saves its learned inner rates with the model, and evaluation adapts with them (not `inner_lr`)."
    import torch
    from ecgmeta.evaluate import LLMMethods
    from ecgmeta.trainer import config_from_dict, meta_train
    cfg = config_from_dict(dict(data_dir=str(DATA), out_dir=str(tmp_path / "run"), ecg_cache_dir=str(tmp_path / "ecgs"),
                                llm="tiny-llama", encoder="random", fusion="resampler", fusion_tokens=2,
                                question_types=QTYPES, max_classes=4, n_way=2, k_shot=1, q_query=1,
                                meta=dict(algorithm="metasgd", first_order=True, inner_steps=1, inner_lr=0.05,
                                          tasks_per_batch=1, outer_lr=0.01),
                                meta_steps=2, val_every=2, val_episodes=1, checkpoint_every=2))
    meta_train(cfg, progress=False, resume=False)
    assert (tmp_path / "run" / "model" / "inner_lrs.safetensors").is_file()
    model, tc, mc = load_run(tmp_path / "run")
    lrs = model.meta_inner_lrs
    assert set(lrs) == set(model.trainable_parameters())
    assert any(not torch.allclose(v, torch.full_like(v, 0.05)) for v in lrs.values()), "the rates were meta-learned"
    m = LLMMethods(model, mc)
    assert m.inner_lrs is lrs
    from ecgmeta.data import PTBXL
    from ecgmeta.evaluate import question_sets
    sets, _ = question_sets(DATA, tc, ecgqa=False)
    items = next(iter(sets.values()))[0].items[:2]
    feats = torch.randn(sum(i.n_ecgs for i in items), 4, model.fusion.config.d_enc)
    p0 = {n: v.detach().clone().requires_grad_() for n, v in m.meta_params.items()}
    grads = torch.autograd.grad(m.loss(p0, items, feats), list(p0.values()))
    want = {n: p0[n].detach() - lrs[n] * g for n, g in zip(p0, grads)}
    got = m.adapt(m.meta_params, items, feats, steps=1)
    for n in want: torch.testing.assert_close(got[n], want[n], rtol=1e-4, atol=1e-6)


def test_proto_fusion_runs_every_method_from_support_prototypes(tmp_path):
    "A 'proto' run (ANIL on the fast weights, choice loss) evaluates with every method; adaptation starts from the prototypes."
    import torch
    from ecgmeta.evaluate import LLMMethods, draw_episodes, question_sets
    from ecgmeta.trainer import config_from_dict, episode_slots, meta_train
    cfg = config_from_dict(dict(data_dir=str(DATA), out_dir=str(tmp_path / "run"), ecg_cache_dir=str(tmp_path / "ecgs"),
                                llm="tiny-llama", encoder="random", fusion="proto", fusion_tokens=2, query_loss="choice",
                                question_types=QTYPES, max_classes=6, n_way=2, k_shot=1, q_query=1,
                                meta=dict(algorithm="anil", first_order=True, inner_steps=1, inner_lr=1.0, tasks_per_batch=1),
                                meta_steps=1, val_every=1, val_episodes=1, checkpoint_every=1))
    meta_train(cfg, progress=False, resume=False)
    model, tc, mc = load_run(tmp_path / "run")
    assert model.fusion.config.kind == "proto" and tc.query_loss == "choice"
    results, _ = evaluate_run(model, tc, mc, DATA, EvalConfig(n_way=(2,), k_shot=(1,), q_query=1, episodes=1,
                                                              question_types=tuple(QTYPES), progress=False), ecgqa=False)
    recs = next(iter(results.values())).records
    assert set(DEFAULT_METHODS) <= set(recs.method)
    assert recs.groupby("method").size().nunique() == 1
    sets, _ = question_sets(DATA, tc, ecgqa=False)
    ep = draw_episodes(next(iter(sets.values())), 2, 1, 1, 1, seed=0)[0]
    m = LLMMethods(model, mc)
    feats = torch.randn(sum(i.n_ecgs for i in ep.support), 4, model.fusion.config.d_enc)
    got = m.adapt(m.meta_params, ep.support, feats, slots=episode_slots(ep), steps=0)
    assert float(got["fusion.head_w"].abs().sum()) > 0, "no inner step yet: the fast weights are the support prototypes"
    assert set(got) - set(m.meta_params) == {"fusion.head_w", "fusion.head_b"}
