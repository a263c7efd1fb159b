"Loading, checking and resolving ECG-QA items; generated question sets."
import json
import os
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from ecgmeta.data import ECGMetaError, PTBXL
from ecgmeta.qa import (QAItem, generate_questions, load_ecgqa, normalize_answer, paraphrase, read_ecgqa_file,
                        resolve, answer_text, GeneratorConfig, question_leads)

DATA = Path(os.environ.get("ECGMETA_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture(scope="module")
def ptbxl():
    return PTBXL(DATA / "ptbxl")


@pytest.mark.parametrize("version", ["template", "paraphrased"])
def test_ecgqa_sample_loads_and_resolves(ptbxl, version):
    qa = load_ecgqa(DATA, version, ptbxl=ptbxl)
    items = [i for v in qa.values() for i in v]
    assert len(items) == 2045
    assert Counter(i.question_type for i in items) == {"single-verify": 1457, "comparison_irrelevant-query": 588}
    rep = resolve(items, ptbxl)
    assert rep.n_dropped == 0 and rep.missing_ecg_ids == ()
    assert all(e in ptbxl for i in items for e in i.ecg_ids)
    assert {i.n_ecgs for i in items} == {1, 2}


@pytest.mark.parametrize("version", ["template", "paraphrased"])
def test_ecgqa_lead_is_part_of_the_question_key(ptbxl, version):
    "'static noise in lead aVL?' and '... in lead V1?' are different questions: no ECG is in both its yes and its no class."
    from ecgmeta.episodes import build_classes, question_key
    items = [i for v in load_ecgqa(DATA, version).values() for i in v]
    lead_t = [i for i in items if i.template_id in (26, 28)]
    assert len(lead_t) == 1287 and all(len(i.attributes) == 2 and i.attributes[1] == question_leads(i.question)[0] for i in lead_t)
    assert all(i.attributes[1] in i.question for i in lead_t)
    assert {len(i.attributes) for i in items if i.template_id not in (26, 28)} <= {0, 1}
    keys = {}
    for i in items: keys.setdefault(question_key(i), {}).setdefault(i.answer, set()).add(i.ecg_ids)
    assert all(not (a.get(("yes",), set()) & a.get(("no",), set())) for a in keys.values())
    # ECG-QA's question_id (shared by the paraphrases of a template question) ignores the lead too; the key is question_id + lead
    pairs = {(question_key(i), (i.question_id, question_leads(i.question))) for i in items}
    assert len(pairs) == len({k for k, _ in pairs}) == len({q for _, q in pairs}) > len({i.question_id for i in items})
    classes, _ = build_classes(items, min_items=1)
    by_key = {}
    for c in classes: by_key.setdefault(question_key(c), []).append(c)
    for cs in by_key.values():
        ecgs = [{it.ecg_ids for it in c.items} for c in cs]  # the ECG (or ECG pair) an item asks about
        assert all(not (a & b) for j, a in enumerate(ecgs) for b in ecgs[j + 1:])


def test_question_leads():
    assert question_leads("Does this ECG show static noise in lead aVL?") == ("lead aVL",)
    assert question_leads("Is lead ii or lead III noisy? What about lead avr and Lead V6?") == ("lead II", "lead III", "lead aVR", "lead V6")
    assert question_leads("Does this ECG show myocardial infarction in inferior leads?") == ()
    assert question_leads("Is the lead in place?") == ()


def _write(tmp_path, items, name="x.json"):
    p = tmp_path / name
    p.write_text(json.dumps(items))
    return p


def _raw():
    return json.loads((DATA / "ecgqa/ptbxl/template/test/80000.json").read_text())[:4]


@pytest.mark.parametrize("field,value,msg", [
    ("answer", "yes", "field 'answer' should be list"),
    ("ecg_id", [], "field 'ecg_id' should be a non-empty list"),
    ("template_id", "26", "field 'template_id' should be int"),
    ("attribute", 5, "field 'attribute' should be null"),
])
def test_malformed_field_names_file_item_and_field(tmp_path, field, value, msg):
    raw = _raw()
    raw[3][field] = value
    p = _write(tmp_path, raw)
    with pytest.raises(ECGMetaError, match="item 3") as e:
        read_ecgqa_file(p)
    assert str(p) in str(e.value) and msg in str(e.value)


def test_missing_field_and_bad_json(tmp_path):
    raw = _raw(); del raw[1]["question"]
    with pytest.raises(ECGMetaError, match="item 1: field 'question' is missing"):
        read_ecgqa_file(_write(tmp_path, raw))
    (tmp_path / "y.json").write_text("{not json")
    with pytest.raises(ECGMetaError, match="not valid JSON"):
        read_ecgqa_file(tmp_path / "y.json")
    (tmp_path / "z.json").write_text("{}")
    with pytest.raises(ECGMetaError, match="expected a JSON list"):
        read_ecgqa_file(tmp_path / "z.json")


def test_missing_ids_are_listed(ptbxl):
    it = load_ecgqa(DATA, splits=("test",))["test"][0]
    ghosts = [replace(it, ecg_ids=(999991,)), replace(it, ecg_ids=(it.ecg_ids[0], 999992))]
    with pytest.raises(ECGMetaError, match="999991, 999992"):
        resolve(ghosts + [it], ptbxl)
    rep = resolve(ghosts + [it], ptbxl, strict=False)
    assert rep.missing_ecg_ids == (999991, 999992) and rep.items == (it,) and rep.n_dropped == 2
    with pytest.raises(ECGMetaError, match="unknown ECG-QA split"):
        load_ecgqa(DATA, splits=("dev",))


def test_answers_normalise():
    assert normalize_answer("The Static noise, baseline drift.") == normalize_answer(answer_text(["baseline drift", "static noise"]))
    assert normalize_answer("yes") != normalize_answer("no")
    assert len(normalize_answer("bigeminal pattern (unknown origin, supraventricular, or ventricular), sinus rhythm")) == 2


def test_generated_questions_deterministic_and_balanced(ptbxl):
    a, b = generate_questions(ptbxl, seed=0), generate_questions(ptbxl, seed=0)
    assert a == b
    assert [i.ecg_ids for i in generate_questions(ptbxl, seed=1)] != [i.ecg_ids for i in a]
    ver = Counter((i.template_id, i.attributes, i.answer) for i in a if i.question_type == "single-verify")
    for (t, attr, ans), n in ver.items():
        if ans == ("yes",): assert ver[(t, attr, ("no",))] == n
    assert {i.paraphrase_id for i in a} == {0, 1, 2}
    assert {i.paraphrase_id for i in generate_questions(ptbxl, paraphrases=1)} == {0}
    assert resolve(a, ptbxl).n_dropped == 0
    fams = {i.attribute_type for i in a}
    assert {"scp_code", "noise", "extra_systole", "heart_axis", "stage_of_infarction"} <= fams
    same = [i for i in a if i.question_type.startswith("comparison_consecutive")]
    pat = ptbxl.db.patient_id.to_dict()
    assert same and all(pat[i.ecg_ids[0]] == pat[i.ecg_ids[1]] for i in same)
    diff = [i for i in a if i.question_type.startswith("comparison_irrelevant")]
    assert diff and all(pat[i.ecg_ids[0]] != pat[i.ecg_ids[1]] for i in diff)


def test_generated_answers_follow_metadata(ptbxl):
    items = generate_questions(ptbxl, seed=0)
    db = ptbxl.db
    for it in items:
        if it.template_id == 105:  # verify noise
            col = {"baseline drift": "baseline_drift", "static noise": "static_noise", "burst noise": "burst_noise",
                   "electrodes problems": "electrodes_problems"}[it.attributes[0]]
            v = db.at[it.ecg_ids[0], col]
            present = isinstance(v, str) and v.replace(",", "").strip() != ""
            assert it.answer == (("yes",) if present else ("no",)), (it, v)
        if it.template_id == 102 and it.answer == ("yes",):  # verify diagnostic statement: likelihood >= 50
            codes = db.at[it.ecg_ids[0], "scp_codes"]
            st = ptbxl.statements
            names = {c for c, l in codes.items() if l >= 50}
            from ecgmeta.qa import statement_name
            assert it.attributes[0] in {statement_name(c, st.at[c, "description"]) for c in names if c in st.index}


def test_paraphrase_roundtrip_and_errors(ptbxl):
    items = generate_questions(ptbxl, seed=0)
    for it in items[::997]:
        other = paraphrase(it, (it.paraphrase_id + 1) % 3)
        assert other.question != it.question and other.answer == it.answer
        assert paraphrase(other, it.paraphrase_id).question == it.question
    with pytest.raises(ECGMetaError, match="paraphrase_id should be in 0..2"):
        paraphrase(items[0], 3)
    with pytest.raises(ECGMetaError, match="paraphrases should be 1, 2 or 3"):
        generate_questions(ptbxl, paraphrases=0)
    with pytest.raises(ECGMetaError, match="unknown attribute families"):
        generate_questions(ptbxl, config=GeneratorConfig(families=("colour",)))
