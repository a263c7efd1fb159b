"""The concept-family class split (issue 16): whole families per split, so meta-test concepts are never asked in meta-training.

Checked on the generated PTB-XL questions of the sample for several seeds and pinned families, then as a property
(hypothesis) over random class subsets, seeds and fractions. The family test reads the class's *names* through
`CONCEPT_FAMILY` directly, so it checks the guarantee, not `class_families` against itself.
"""
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecgmeta.data import ECGMetaError, PTBXL
from ecgmeta.episodes import (CLASS_FAMILIES, CONCEPT_FAMILY, ENCODER_TEXT_FAMILIES, NEUTRAL_ANSWERS, SPLIT_NAMES,
                              build_classes, class_families, class_family, split_classes)
from ecgmeta.qa import TEMPLATES, generate_questions, statement_name

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ECGMETA_DATA", ROOT.parent / "shared" / "data"))


# the `ptbxl` and `classes` fixtures live in conftest.py


def named(c) -> set[str]:
    "Families of the concepts a class names in its attributes and answer (neutral words name none)."
    return {CONCEPT_FAMILY[n] for n in (*c.attributes, *c.answer) if n not in NEUTRAL_ANSWERS}


def assert_family_disjoint(sp, pinned_test=None):
    fams = sp.families()
    for i, a in enumerate(SPLIT_NAMES):
        for b in SPLIT_NAMES[i + 1:]:
            assert not set(fams[a]) & set(fams[b]), (a, b, fams)
    test = set(fams["test"])
    for s in ("train", "val"):
        for c in sp[s]:
            assert not named(c) & test, (s, c.key, named(c) & test)  # no attribute or answer names a test family
            assert not class_families(c) & test
    keys = [c.key for s in SPLIT_NAMES for c in sp[s]]
    assert len(keys) == len(set(keys))
    if pinned_test is not None: assert set(fams["test"]) == set(pinned_test)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_family_split_is_family_disjoint(classes, ptbxl, seed):
    sp = split_classes(classes, ptbxl, by="family", seed=seed)
    assert sp.by == "family" and sp.train and sp.test
    assert_family_disjoint(sp)
    assert sum(len(sp[s]) for s in SPLIT_NAMES) + len(sp.report.dropped) == len(classes)
    two = [d for d in sp.report.dropped if d.reason.startswith("names families of two splits")]
    by_key = {c.key: c for c in classes}
    assert two and all(len(class_families(by_key[d.key])) > 1 for d in two)
    fold = ptbxl.db.strat_fold.to_dict()
    assert {fold[e] for c in sp.test for it in c.items for e in it.ecg_ids} == {10}


def test_family_split_reproducible_and_seeded(classes, ptbxl):
    a, b = (split_classes(classes, ptbxl, by="family", seed=4) for _ in range(2))
    assert [c.key for c in a.test] == [c.key for c in b.test] and a.report == b.report
    assert len({split_classes(classes, ptbxl, by="family", seed=s).families()["test"] for s in range(6)}) > 1


def test_pinned_families(classes, ptbxl):
    sp = split_classes(classes, ptbxl, by="family", test_families=["infarction", "hypertrophy"], val_families="rhythm")
    assert_family_disjoint(sp, pinned_test={"infarction", "hypertrophy"})
    assert sp.families()["val"] == ("rhythm",)
    with pytest.raises(ECGMetaError, match=r"unknown families \['mi'\]"):
        split_classes(classes, ptbxl, by="family", test_families=["mi"])
    with pytest.raises(ECGMetaError, match="both test_families and val_families"):
        split_classes(classes, ptbxl, by="family", test_families=["noise"], val_families=["noise"])
    with pytest.raises(ECGMetaError, match="need by='family'"):
        split_classes(classes, ptbxl, by="template", test_families=["noise"])
    with pytest.raises(ECGMetaError, match="at least one family"):
        split_classes(classes, ptbxl, by="family", test_families=[])
    unseen = [f for f in CLASS_FAMILIES if f not in ENCODER_TEXT_FAMILIES]  # the encoder-unseen variant
    with pytest.raises(ECGMetaError, match=r"no class names the families \['intervals'\]"):
        split_classes(classes, ptbxl, by="family", test_families=unseen)


def test_attribute_split_removed(classes, ptbxl):
    with pytest.raises(ECGMetaError, match="by='attribute' was removed.*not attribute-disjoint.*by='family'"):
        split_classes(classes, ptbxl, by="attribute")
    with pytest.raises(ECGMetaError, match="by should be 'template' or 'family'"):
        split_classes(classes, ptbxl, by="answer")


def test_template_split_is_not_concept_disjoint(classes, ptbxl):
    "What the template split does not promise: its meta-test concepts are asked in meta-training by other templates."
    sp = split_classes(classes, ptbxl, by="template", seed=0)
    assert set(sp.families()["test"]) & set(sp.families()["train"])


def test_class_family_definition(classes):
    by_key = {c.key: c for c in classes}
    assert class_family(by_key[(124, (), ("none",))]) == "rhythm"  # the rhythm query names rhythm even when answered none
    assert class_family(by_key[(122, (), ("none",))]) == ""  # 'which diagnostic statement': none names no concept
    assert class_family(by_key[(107, ("left axis deviation",), ("yes",))]) == "heart_axis"
    c = by_key[(112, ("left ventricular hypertrophy", "myocardial infarction in inferior leads"), ("left ventricular hypertrophy",))]
    assert class_families(c) == {"hypertrophy", "infarction"} and class_family(c) == "infarction+hypertrophy"
    for c in classes:  # the question's family (generator template) is among the class's families
        f = TEMPLATES[c.template_id].family
        if f in ("rhythm", "noise", "extra_systole", "heart_axis"): assert f in class_families(c)
        if f == "infarction_stage": assert "infarction" in class_families(c)
        assert named(c) <= class_families(c)


def test_every_known_name_has_a_family(ptbxl):
    st = ptbxl.statements
    for code in st.index:
        assert statement_name(code, st.at[code, "description"]) in CONCEPT_FAMILY, code
    import pandas as pd
    answers = set(pd.read_csv(DATA / "ecgqa/ptbxl/answers.csv")["class"])
    assert {a for a in answers if a not in CONCEPT_FAMILY and a not in NEUTRAL_ANSWERS} == set()
    assert set(CONCEPT_FAMILY.values()) == set(CLASS_FAMILIES)


def test_encoder_text_families_match_the_pretraining_text(ptbxl):
    "ENCODER_TEXT_FAMILIES = the families the shipped encoder's pretraining text named (its recipe, training folds)."
    from ecgmeta.pretrain import record_texts
    from ecgmeta.qa import ecg_facts
    cfg = json.loads((ROOT / "ecgmeta/configs/pretrain_small.json").read_text())
    card = (ROOT / "ecgmeta/checkpoints/ecg-encoder-ptbxl-small/MODEL_CARD.md").read_text()
    assert "pretrain_small.json" in card and "strat_fold 1-8" in card
    ids = [int(e) for e in ptbxl.db.index[ptbxl.db.strat_fold.isin(range(1, 9))]]
    texts = record_texts(ptbxl, ids, cfg["text_families"])
    st, facts, seen = ptbxl.statements, ecg_facts(ptbxl), set()
    for e, text in zip(ids, texts):
        for code in ptbxl.db.scp_codes.loc[e]:
            assert str(st.at[code, "description"]).strip().lower() in text  # every SCP statement is in the text
            seen.add(CONCEPT_FAMILY[statement_name(code, st.at[code, "description"])])
        for f in cfg["text_families"]:
            for n in facts[e].positive[f]:
                assert n in text
                seen.add(CONCEPT_FAMILY[n])
    assert seen == set(ENCODER_TEXT_FAMILIES)


FAMILY_SETTINGS = settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@FAMILY_SETTINGS
@given(data=st.data())
def test_family_split_property(classes, ptbxl, data):
    "Any subset of classes, seed, fractions and pinned test families: no family in two splits, no test family in meta-train."
    keep = data.draw(st.lists(st.booleans(), min_size=len(classes), max_size=len(classes)))
    sub = [c for c, k in zip(classes, keep) if k] or classes[:1]
    seed = data.draw(st.integers(0, 2**16))
    w = data.draw(st.tuples(*[st.integers(0, 10)] * 3).filter(lambda t: sum(t) > 0))
    fr = tuple(x / sum(w) for x in w)
    present = sorted(set().union(*(class_families(c) for c in sub)), key=CLASS_FAMILIES.index)
    pin = data.draw(st.none() | st.lists(st.sampled_from(present), min_size=1, unique=True)) if present else None
    sp = split_classes(sub, ptbxl, by="family", seed=seed, fractions=fr, test_families=pin, min_items=1)
    assert_family_disjoint(sp, pinned_test=None)
    if pin: assert set(sp.families()["test"]) <= set(pin)
    assert sum(len(sp[s]) for s in SPLIT_NAMES) + len(sp.report.dropped) == len(sub)


def test_meta_training_config_reaches_the_family_split(ptbxl):
    "A run's config pins families through `MetaTrainConfig.test_families`: what training, validation and evaluation all read."
    from ecgmeta.trainer import MetaTrainConfig, class_splits
    tc = MetaTrainConfig(data_dir=str(DATA), question_types=("single-verify", "single-choose", "single-query"), split_by="family",
                         test_families=["infarction"], val_families=("rhythm",))
    assert tc.test_families == ("infarction",)  # lists from JSON configs become tuples
    sp = class_splits(tc, ptbxl)
    fams = sp.families()
    assert fams["test"] == ("infarction",) and fams["val"] == ("rhythm",)
    assert not set(fams["train"]) & {"infarction", "rhythm"}
    with pytest.raises(ECGMetaError, match="need by='family'"):
        class_splits(MetaTrainConfig(data_dir=str(DATA), test_families=("infarction",)), ptbxl)
