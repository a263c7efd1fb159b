"Metrics, bootstrap intervals, answer normalisation and summaries of `ecgmeta.evaluate` (no model needed)."
import math

import numpy as np
import pandas as pd
import pytest

from ecgmeta.data import ECGMetaError
from ecgmeta.evaluate import (RECORD_COLUMNS, EvalConfig, EvalResult, bootstrap_ci, check_targets, compare_methods,
                              is_correct, paired_diff_ci, summarize, _derangement)


@pytest.mark.parametrize("pred,gold,ok", [
    ("yes", ("yes",), True),
    ("Yes.", ["yes"], True),
    ("sinus rhythm, atrial fibrillation", ("atrial fibrillation", "sinus rhythm"), True),  # order-free set match
    ("atrial fibrillation; sinus rhythm", ("atrial fibrillation", "sinus rhythm"), True),
    ("sinus rhythm", ("atrial fibrillation", "sinus rhythm"), False),  # missing part
    ("sinus rhythm, atrial fibrillation, none", ("atrial fibrillation", "sinus rhythm"), False),  # extra part
    ("the left bundle branch block", ("left bundle branch block",), True),  # articles dropped
    ("", ("none",), False),
    ("no", ("yes",), False),
])
def test_is_correct_set_normalisation(pred, gold, ok):
    assert is_correct(pred, gold) is ok


def test_bootstrap_ci_basic_properties():
    rng = np.random.default_rng(1)
    correct = (rng.random(200) < 0.7).astype(float)
    groups = np.repeat(np.arange(40), 5)
    acc, lo, hi = bootstrap_ci(correct, groups, n_boot=2000, seed=0)
    assert acc == pytest.approx(correct.mean())
    assert lo < acc < hi
    assert 0.05 < hi - lo < 0.3
    assert bootstrap_ci(correct, groups, seed=0) == bootstrap_ci(correct, groups, seed=0)  # seeded
    a2 = bootstrap_ci(correct, groups, ci=0.5, seed=0)
    assert a2[2] - a2[1] < hi - lo  # a narrower coverage gives a narrower interval


def test_bootstrap_ci_coverage_is_close_to_nominal():
    "Over simulated episode data with known accuracy, the 95% interval covers the truth about 95% of the time."
    rng = np.random.default_rng(0)
    hits, sims = 0, 300
    for s in range(sims):
        p_ep = np.clip(rng.normal(0.6, 0.1, size=30), 0, 1)  # episode-level variation
        correct = (rng.random((30, 6)) < p_ep[:, None]).astype(float).ravel()
        _, lo, hi = bootstrap_ci(correct, np.repeat(np.arange(30), 6), n_boot=500, seed=s)
        hits += lo <= 0.6 <= hi
    assert 0.88 <= hits / sims <= 0.99


def test_bootstrap_resamples_episodes_not_queries():
    "Queries of one episode move together: all-or-nothing episodes give a wider interval than independent queries."
    groups = np.repeat(np.arange(10), 10)
    clustered = np.repeat(np.array([1, 0] * 5, float), 10)  # each episode all right or all wrong
    _, lo_c, hi_c = bootstrap_ci(clustered, groups, seed=0)
    mixed = np.tile(np.array([1, 0] * 5, float), 10)  # every episode half right
    _, lo_m, hi_m = bootstrap_ci(mixed, groups, seed=0)
    assert hi_c - lo_c > 0.3 and hi_m - lo_m == 0


def test_degenerate_inputs():
    assert all(math.isnan(v) for v in bootstrap_ci([], []))
    acc, lo, hi = bootstrap_ci([1, 0], [3, 3])
    assert acc == 0.5 and math.isnan(lo) and math.isnan(hi)
    with pytest.raises(ECGMetaError, match="same length"):
        bootstrap_ci([1, 0, 1], [0, 1])


def test_paired_diff_ci():
    groups = np.repeat(np.arange(20), 5)
    rng = np.random.default_rng(3)
    b = (rng.random(100) < 0.5).astype(float)
    a = np.maximum(b, (rng.random(100) < 0.5).astype(float))  # a is never worse than b
    d, lo, hi = paired_diff_ci(a, b, groups, seed=0)
    assert d == pytest.approx(a.mean() - b.mean()) and 0 < lo <= d <= hi
    assert paired_diff_ci(b, b, groups) == (0.0, 0.0, 0.0)
    d2, lo2, hi2 = paired_diff_ci(b, a, groups, seed=0)
    assert d2 == pytest.approx(-d) and hi2 < 0


def test_derangement_has_no_fixed_points():
    rng = np.random.default_rng(0)
    for n in (2, 3, 10, 25):
        for _ in range(20):
            p = _derangement(n, rng)
            assert sorted(p) == list(range(n)) and (p != np.arange(n)).all()


def _records(acc_meta=0.9, acc_base=0.5, episodes=12, q=10, seed=0, easy_every=0):
    "Synthetic records; with `easy_every`, every such query is text-answerable and every method gets it right."
    rng = np.random.default_rng(seed)
    rows = []
    for qt in ("single-verify", "single-choose", "single-query"):
        for e in range(episodes):
            for j in range(q):
                easy = bool(easy_every) and j % easy_every == 0
                for m, p in (("meta", acc_meta), ("no_ecg", acc_base), ("random_ecg", acc_base), ("majority", acc_base)):
                    c = True if easy else bool(rng.random() < p)
                    rows.append(("generated", "12 leads", 5, 5, qt, f"{qt}#{e}", m, j, 101, f"q{j % 4}?", "yes", "yes" if c else "no",
                                 c, 1.0, easy, "1"))
    return pd.DataFrame(rows, columns=RECORD_COLUMNS)


def test_summarize_and_compare_and_targets():
    recs = _records()
    s = summarize(recs, by=("question_type", "method"))
    assert set(s.method) == {"meta", "no_ecg", "random_ecg", "majority"}
    assert (s.n_episodes == 12).all() and (s.n_queries == 120).all()
    assert ((s.ci_low <= s.accuracy) & (s.accuracy <= s.ci_high)).all()
    c = compare_methods(recs, "meta", ("no_ecg",))
    assert len(c) == 3 and (c["diff"] > 0.2).all() and (c.ci_low > 0).all()
    res = EvalResult(recs, EvalConfig(n_way=(5,), k_shot=(5,)))
    t = check_targets(res)
    assert len(t) == 6 and (t.met == "yes").all() and set(t.baseline) == {"majority", "random_ecg"}
    assert t.diff_question_ci.notna().all() and (t.questions == 4).all()
    weak = EvalResult(_records(acc_meta=0.4, acc_base=0.5, seed=1), EvalConfig(n_way=(5,), k_shot=(5,)))
    tw = check_targets(weak)
    assert (tw.met == "no").all()  # below the controls: no CI above 0


def test_text_answerable_queries_cannot_meet_a_target():
    "Queries every method gets right from the support's text (half of them here) neither help nor count: they are left out."
    recs = _records(acc_meta=0.5, acc_base=0.5, easy_every=2, seed=3)
    res = EvalResult(recs, EvalConfig(n_way=(5,), k_shot=(5,)))
    assert (res.compare(ecg_needed=False).acc_method > 0.7).all()  # with them, every method looks good
    assert (res.compare().acc_method < 0.65).all() and (res.compare().n_queries == 60).all()
    assert (check_targets(res).met == "no").all()
    counts = res.text_answerable_counts()
    assert (counts.queries == 120).all() and (counts.text_answerable == 60).all()


def test_question_bootstrap_is_wider_with_few_questions():
    "The same paired difference, resampling 4 distinct questions instead of 12 episodes: a wider interval."
    recs = _records(acc_meta=0.7, acc_base=0.5, seed=4)
    c_ep = compare_methods(recs, "meta", ("majority",), cluster="episode")
    c_q = compare_methods(recs, "meta", ("majority",), cluster="question")
    assert np.allclose(c_ep["diff"], c_q["diff"])
    assert ((c_q.ci_high - c_q.ci_low) > (c_ep.ci_high - c_ep.ci_low)).any()
    with pytest.raises(Exception, match="cluster"):
        compare_methods(recs, "meta", ("majority",), cluster="patient")


def test_targets_missing_type_is_reported_not_met():
    recs = _records()
    recs = recs[recs.question_type != "single-query"]
    t = check_targets(EvalResult(recs, EvalConfig(n_way=(5,), k_shot=(5,))))
    q = t[t.question_type == "single-query"]
    assert len(q) == 2 and q.met.str.startswith("no").all()
