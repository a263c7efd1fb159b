"Task classes, class splits and the episode sampler: the properties meta-learning relies on."
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from ecgmeta.data import ECGMetaError, PTBXL
from ecgmeta.episodes import (Episode, EpisodeSampler, TaskDataset, build_classes, check_patient_disjoint, split_classes,
                              SPLIT_NAMES, plot_episode, question_key, text_answerable, contrastive_share, class_families)
from ecgmeta.qa import generate_questions, load_ecgqa

DATA = Path(os.environ.get("ECGMETA_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


# the `ptbxl` and `classes` fixtures live in conftest.py


@pytest.fixture(scope="module")
def splits(classes, ptbxl):
    return split_classes(classes, ptbxl, by="template", seed=0)


def test_acceptance_60_single_classes_disjoint(splits):
    single = [c for s in SPLIT_NAMES for c in splits[s] if c.question_type.startswith("single-")]
    assert len(single) >= 60 and all(len(c) >= 10 for c in single)
    assert {c.question_type for c in single} == {"single-verify", "single-choose", "single-query"}
    assert splits.train and splits.test
    assert any(c.question_type.startswith("single-") for c in splits.test)


@pytest.mark.parametrize("by", ["template", "family"])
def test_no_class_in_two_splits(classes, ptbxl, by):
    sp = split_classes(classes, ptbxl, by=by, seed=1)
    keys = {s: {c.key for c in sp[s]} for s in SPLIT_NAMES}
    for a in SPLIT_NAMES:
        for b in SPLIT_NAMES:
            if a < b: assert not keys[a] & keys[b]
    if by == "template":
        t = {s: {c.template_id for c in sp[s]} for s in SPLIT_NAMES}
        assert not (t["train"] & t["test"]) and not (t["train"] & t["val"]) and not (t["val"] & t["test"])
    else:
        f = {s: set().union(*(class_families(c) for c in sp[s])) for s in SPLIT_NAMES}
        assert not (f["train"] & f["test"]) and not (f["train"] & f["val"]) and not (f["val"] & f["test"])


def test_no_patient_in_two_ecg_splits(splits, ptbxl):
    pat, fold = ptbxl.db.patient_id.to_dict(), ptbxl.db.strat_fold.to_dict()
    p = {s: {pat[e] for c in splits[s] for it in c.items for e in it.ecg_ids} for s in SPLIT_NAMES}
    assert not p["train"] & p["val"] and not p["train"] & p["test"] and not p["val"] & p["test"]
    allowed = {"train": set(range(1, 9)), "val": {9}, "test": {10}}
    for s in SPLIT_NAMES:
        assert {fold[e] for c in splits[s] for it in c.items for e in it.ecg_ids} <= allowed[s]


def test_patient_in_two_folds_raises(ptbxl, classes):
    db = ptbxl.db.copy()
    e9 = db.index[db.strat_fold == 9][0]
    db.loc[e9, "patient_id"] = db.patient_id[db.strat_fold == 2].iloc[0]
    with pytest.raises(ECGMetaError, match=r"have ECGs in both the train folds .* and the val folds"):
        check_patient_disjoint(db)
    with pytest.raises(ECGMetaError, match="patient-disjoint"):
        split_classes(classes, db)


@pytest.mark.parametrize("split", SPLIT_NAMES)
def test_support_query_disjoint_in_every_episode(splits, split):
    smp = EpisodeSampler(splits[split], 5, 5, 5, seed=11, episodes=1000)
    n = 0
    for ep in smp:
        sup, qry = ep.support, ep.query
        assert len(sup) == 25 and len(qry) == 25 and len(set(ep.classes)) == 5
        assert not {id(i) for i in sup} & {id(i) for i in qry}
        assert not {(i.source, i.sample_id) for i in sup} & {(i.source, i.sample_id) for i in qry}
        assert not {e for i in sup for e in i.ecg_ids} & {e for i in qry for e in i.ecg_ids}
        assert len({(i.source, i.sample_id) for i in sup}) == 25 and len({(i.source, i.sample_id) for i in qry}) == 25
        for its, labs in ((sup, ep.support_labels), (qry, ep.query_labels)):
            assert all((i.template_id, i.attributes, i.answer) == ep.classes[l] for i, l in zip(its, labs))
        n += 1
    assert n == 1000


def test_same_seed_same_episodes_and_resume(splits):
    a = [EpisodeSampler(splits.train, 5, 5, 5, seed=3).sample() for _ in range(1)]
    s1, s2 = EpisodeSampler(splits.train, 5, 5, 5, seed=3), EpisodeSampler(splits.train, 5, 5, 5, seed=3)
    e1, e2 = [s1.sample() for _ in range(20)], [s2.sample() for _ in range(20)]
    assert e1 == e2 and e1[0] == a[0]
    assert e1 != [EpisodeSampler(splits.train, 5, 5, 5, seed=4).sample() for _ in range(20)]
    s3 = EpisodeSampler(splits.train, 5, 5, 5, seed=3)
    [s3.sample() for _ in range(10)]
    state = json.loads(json.dumps(s3.state_dict()))  # survives a JSON checkpoint
    s4 = EpisodeSampler(splits.train, 5, 5, 5, seed=999)
    s4.load_state_dict(state)
    assert [s4.sample() for _ in range(10)] == e1[10:]
    s1.reset()
    assert s1.sample() == e1[0]


def test_bad_sampler_input_names_numbers(splits):
    n = len(splits.test)
    with pytest.raises(ECGMetaError, match=f"n_way={n + 1} is larger than the {n} classes"):
        EpisodeSampler(splits.test, n_way=n + 1)
    with pytest.raises(ECGMetaError, match=r"k_shot \+ q_query = 6 \+ 5 = 11"):
        EpisodeSampler(splits.train, 5, 6, 5)
    with pytest.raises(ECGMetaError, match="k_shot should be an integer >= 1"):
        EpisodeSampler(splits.train, 5, 0, 5)
    with pytest.raises(ECGMetaError, match="episodes should be None"):
        EpisodeSampler(splits.train, 5, 5, 5, episodes=-1)
    with pytest.raises(ECGMetaError, match="min_items should be >= 1"):
        build_classes(splits.train[0].items, min_items=0)


def test_drop_report_lists_small_classes(splits):
    items = list(splits.train[0].items[:3]) + list(splits.train[1].items)
    kept, rep = build_classes(items, min_items=10)
    assert [c.key for c in kept] == [splits.train[1].key]
    assert len(rep.dropped) == 1 and rep.dropped[0].key == splits.train[0].key and rep.dropped[0].n_items == 3
    assert "fewer than 10 items" in rep.dropped[0].reason
    assert len(rep.to_frame()) == 1


def test_task_dataset_and_collate(splits, ptbxl, tmp_path):
    from ecgmeta.cache import CachedECGDataset
    ds = CachedECGDataset(ptbxl, tmp_path, ids=ptbxl.split_ids("test"), progress=False)
    tasks = TaskDataset(EpisodeSampler(splits.test, 5, 5, 5, seed=0, episodes=3), ds)
    assert len(tasks) == 3 and tasks.num_tasks == 3
    bs = list(tasks)
    assert len(bs) == 3
    b = bs[0]
    m = b.signals.shape[0]
    assert b.signals.shape == (m, 12, 1000) and b.masks.shape == (m, 12) and b.masks.dtype == torch.bool
    assert len(set(b.ecg_ids.tolist())) == m
    assert len(b.support) == 25 and len(b.query) == 25 and b.support.is_support.all() and not b.query.is_support.any()
    for i, slots in enumerate(b.ecg_slots):
        assert b.n_ecgs[i] == len(slots) and all(0 <= s < m for s in slots)
        assert b.ecg_index[i, : len(slots)].tolist() == list(slots)
    ep = EpisodeSampler(splits.test, 5, 5, 5, seed=0).sample()
    assert b.questions == [i.question for i in ep.support + ep.query]
    flat = {int(e): k for k, e in enumerate(b.ecg_ids)}
    it = ep.query[0]
    assert torch.equal(b.signals[flat[it.ecg_ids[0]]], ds.get(it.ecg_ids[0]).signal)
    assert TaskDataset(EpisodeSampler(splits.train, 5, 5, 5)).num_tasks == -1
    assert isinstance(TaskDataset(EpisodeSampler(splits.train, 5, 5, 5)).sample().support, tuple)
    fig = plot_episode(ep, ds)
    assert type(fig).__name__ == "Figure"
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_ecgqa_items_make_classes(ptbxl):
    items = [i for v in load_ecgqa(DATA, "template", ptbxl=ptbxl).values() for i in v]
    classes, rep = build_classes(items, min_items=10)
    assert classes and all(len(c) >= 10 for c in classes)
    sp = split_classes(classes, ptbxl, by="family", seed=0)
    assert sum(len(sp[s]) for s in SPLIT_NAMES) + len(sp.report.dropped) == len(classes)
    by_answer = {}
    for c in classes: by_answer.setdefault(question_key(c), {})[c.answer] = {e for it in c.items for e in it.ecg_ids}
    assert all(not (a.get(("yes",), set()) & a.get(("no",), set())) for a in by_answer.values())  # the lead separates keys
    assert any(len(c.attributes) == 2 and c.attributes[1].startswith("lead ") for c in classes)


def test_text_answerable(splits):
    verify = [c for c in splits.train if c.question_type == "single-verify"]
    yes = next(c for c in verify if c.answer == ("yes",) and any(question_key(d) == question_key(c) and d.answer == ("no",) for d in verify))
    no = next(c for c in verify if question_key(c) == question_key(yes) and c.answer == ("no",))
    other = next(c for c in verify if question_key(c) != question_key(yes))
    ep = Episode((), (), (yes.items[0], no.items[0], other.items[0], no.items[1]), (0, 1, 2, 1), (yes.key, no.key, other.key))
    assert text_answerable(ep) == [False, False, True, False]
    assert contrastive_share(ep) == pytest.approx(2 / 3)
    for con in (False, True):
        for ep in EpisodeSampler(splits.train, 5, 2, 3, seed=9, episodes=40, contrastive=con):
            ta = text_answerable(ep)
            assert len(ta) == len(ep.query) and all(isinstance(t, bool) for t in ta)
            for q, lab, t in zip(ep.query, ep.query_labels, ta):
                others = [k for i, k in enumerate(ep.classes) if i != lab and question_key(k) == question_key(q)]
                assert t == (not others)  # True exactly when no other class of the episode asks the query's question
