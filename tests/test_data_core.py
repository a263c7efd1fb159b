"""Tests of `ecgmeta.data` on the real sample data and on deliberately broken copies of it."""
import ast
import csv
import logging
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import wfdb

from ecgmeta.data import (LEADS12, PTBXL, DuplicateIdError, DuplicateLeadError, ECGMetaError, MissingRecordError,
                          RecordReadError, SamplingRateError, SignalQualityError, UnknownLeadError, canonical_lead,
                          read_annotations, read_record)

DATA = Path(os.environ.get("ECGMETA_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
PTB = DATA / "ptbxl"
REC1 = PTB / "records100/00000/00001_lr"


@pytest.fixture(scope="module")
def ptbxl(): return PTBXL(PTB)


def copy_record(src: Path, dst_dir: Path, exts=(".hea", ".dat")) -> Path:
    for e in exts: shutil.copy(src.with_name(src.name + e), dst_dir)
    return dst_dir / src.name


def rewrite_header(p: Path, fn):
    h = p.with_name(p.name + ".hea")
    h.write_text(fn(h.read_text()))


def write_record(tmp_path: Path, sig: np.ndarray, names=LEADS12, fs=100, name="rec") -> Path:
    wfdb.wrsamp(name, fs=fs, units=["mV"] * sig.shape[1], sig_name=list(names), p_signal=sig, fmt=["16"] * sig.shape[1],
                adc_gain=[1000.0] * sig.shape[1], baseline=[0] * sig.shape[1], write_dir=str(tmp_path))
    return tmp_path / name


def ecg_like(n=1000, leads=12, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 100
    return np.stack([np.sin(2 * np.pi * 1.2 * t + k) + 0.05 * rng.standard_normal(n) for k in range(leads)], 1)


# ---------------------------------------------------------------- real data

def test_data_present():
    assert (PTB / "ptbxl_database.csv").exists(), f"sample data not found at {DATA}; set ECGMETA_DATA"


def test_read_ptbxl_record_matches_wfdb():
    r = read_record(REC1)
    w = wfdb.rdrecord(str(REC1))
    assert r.signal.shape == (12, 1000) and r.signal.dtype == np.float32 and r.mask.all()
    np.testing.assert_allclose(r.signal, w.p_signal.T, atol=1e-6)
    assert r.fs == 100.0 and r.sig_name == LEADS12 and r.source_sig_name == tuple(w.sig_name)
    assert r.units == ("mV",) * 12 and r.duration == 10.0 and r.path == REC1
    assert "00001_lr" in repr(r) and "12/12 leads" in repr(r)


def test_units_converted_to_mv(tmp_path):
    sig = ecg_like(leads=2)
    wfdb.wrsamp("uv", fs=100, units=["uV", "uV"], sig_name=["I", "II"], p_signal=sig * 1000, fmt=["16", "16"],
                adc_gain=[1.0, 1.0], baseline=[0, 0], write_dir=str(tmp_path))
    r = read_record(tmp_path / "uv")
    np.testing.assert_allclose(r.signal[:2], sig.T, atol=1e-3)
    assert r.present_leads == ("I", "II") and not r.mask[2:].any() and (r.signal[2:] == 0).all()


def test_mitbih_and_ptb_diagnostic_leads():
    mit = read_record(DATA / "mitbih/100")
    assert mit.present_leads == ("II", "V5") and mit.source_sig_name == ("MLII", "V5") and mit.n_samples == 650000
    ptb = read_record(DATA / "mitbih/s0010_re")
    assert ptb.mask.all() and set(ptb.extra) == {"vx", "vy", "vz"} and ptb.fs == 1000.0
    assert ptb.extra["vx"].shape == (38400,) and any("age: 81" in c for c in ptb.comments)
    w = wfdb.rdrecord(str(DATA / "mitbih/s0010_re"))
    np.testing.assert_allclose(ptb.signal[3], w.p_signal[:, 3], atol=1e-6)  # avr -> aVR row


def test_canonical_lead():
    assert [canonical_lead(n) for n in ("i", "AVR", "avl", "aVF", "MLII", "v3", "D2")] == \
        ["I", "aVR", "aVL", "aVF", "II", "V3", "II"]
    assert [canonical_lead(n) for n in ("vx", "vy", "vz", "RESP")] == [None] * 4


def test_mitbih_annotations():
    ann = read_annotations(DATA / "mitbih/100")
    ref = wfdb.rdann(str(DATA / "mitbih/100"), "atr")
    assert len(ann) == 2274 and ann.fs == 360.0
    beats = ann.beats()
    assert len(beats) == 2273
    assert Counter(a.symbol for a in beats) == {"N": 2239, "A": 33, "V": 1}
    assert Counter(a.symbol for a in ann) == {"N": 2239, "A": 33, "V": 1, "+": 1}
    assert [a.sample for a in ann] == ref.sample.tolist()
    np.testing.assert_allclose([a.time for a in ann], ref.sample / 360)
    v = next(a for a in ann if a.symbol == "V")
    assert v.time == pytest.approx(v.sample / 360)
    df = ann.to_frame()
    assert list(df.columns) == ["sample", "time", "symbol", "aux_note", "subtype", "chan"] and len(df) == 2274
    (ri,) = ann.rhythm_intervals()
    assert ri.rhythm == "N" and ri.end == pytest.approx(650000 / 360)


def test_cpsc_rhythm_intervals():
    ann = read_annotations(DATA / "cpsc2021/data_101_6")
    ri = ann.rhythm_intervals()
    assert [(r.rhythm, r.start_sample, r.end_sample) for r in ri] == [
        ("AFIB", 3132, 5639), ("N", 5639, 8468), ("AFIB", 8468, 9100), ("N", 9100, 11121),
        ("AFIB", 11121, 16050), ("N", 16050, 21303), ("AFIB", 21303, 22355)]
    assert ri[0].start == pytest.approx(3132 / 200) and ri[0].duration == pytest.approx((5639 - 3132) / 200)
    pers = read_annotations(DATA / "cpsc2021/data_84_1")
    assert not any(a.aux_note == "None" for a in pers)  # CPSC's literal 'None' on beats is dropped
    assert [(r.rhythm, r.start_sample, r.end_sample) for r in pers.rhythm_intervals()] == \
        [("AFIB", 0, 103807), ("N", 103807, 103808)]


def test_ptbxl_loads(ptbxl):
    assert len(ptbxl) == 3005 and ptbxl.db.index.name == "ecg_id" and ptbxl.ids.shape == (3005,)
    assert ptbxl.db.loc[1, "scp_codes"] == {"NORM": 100.0, "LVOLT": 0.0, "SR": 0.0}
    assert ptbxl.db.loc[1, "diagnostic_superclass"] == ["NORM"] and ptbxl.db.loc[1, "rhythm"] == ["SR"]
    assert {s: len(ptbxl.split_ids(s)) for s in ("train", "val", "test")} == {"train": 2342, "val": 333, "test": 330}
    assert ptbxl.patient_ids.loc[1] == 15709 and ptbxl.patient_ids.nunique() == 2918
    assert (ptbxl.sex.value_counts().sort_index().tolist()) == [1563, 1442]
    assert (ptbxl.age == 300).sum() == 38
    assert 1 in ptbxl and 999999 not in ptbxl


def independent_superclass_counts():
    with open(PTB / "scp_statements.csv", newline="") as f:
        diag = {r[""]: r["diagnostic_class"] for r in csv.DictReader(f) if r["diagnostic"].strip() in ("1", "1.0")}
    per_fold, total = {}, Counter()
    with open(PTB / "ptbxl_database.csv", newline="") as f:
        for r in csv.DictReader(f):
            sup = {diag[k] for k in ast.literal_eval(r["scp_codes"]) if k in diag}
            c = per_fold.setdefault(int(r["strat_fold"]), Counter())
            c.update(sup)
            total.update(sup)
            if not sup: total["none"] += 1
    return per_fold, total


def test_superclass_counts_independent(ptbxl):
    per_fold, total = independent_superclass_counts()
    lab = ptbxl.labels("superclass")
    assert list(lab.columns) == ["NORM", "MI", "STTC", "CD", "HYP"] and lab.dtypes.eq(np.int8).all()
    assert lab.sum().to_dict() == {k: total[k] for k in lab.columns}
    assert int((lab.sum(axis=1) == 0).sum()) == total["none"] == 60
    by_fold = lab.groupby(ptbxl.db.strat_fold).sum()
    for fold, c in per_fold.items():
        assert by_fold.loc[fold].to_dict() == {k: c[k] for k in lab.columns}, fold
    assert total["NORM"] == 1444 and total["MI"] == 668  # README figures


def test_other_label_kinds(ptbxl):
    rh = ptbxl.labels("rhythm")
    assert rh.sum()[["SR", "AFIB", "STACH"]].tolist() == [2294, 198, 108]
    assert ptbxl.labels("form").shape[0] == 3005 and ptbxl.labels("diagnostic").shape[1] > 20
    assert "NORM" in ptbxl.labels("subclass").columns
    with pytest.raises(ECGMetaError, match="superclass"): ptbxl.labels("bogus")


def test_ptbxl_records(ptbxl):
    r = ptbxl.record(1)
    assert r.signal.shape == (12, 1000) and ptbxl.record_path(1) == REC1
    hr = ptbxl.record(1, fs=500)
    assert hr.signal.shape == (12, 5000) and hr.fs == 500
    assert len(ptbxl.available_ids(500)) == 400
    have = set(ptbxl.available_ids(500).tolist())
    lacking = [int(i) for i in ptbxl.ids if int(i) not in have][:2]
    skipped = []
    got = [i for i, _ in ptbxl.iter_records([1, 2] + lacking, fs=500, progress=False, skip_errors=True,
                                            skipped=skipped)]
    assert got == [1, 2] and [i for i, _ in skipped] == lacking
    assert all(isinstance(e, MissingRecordError) for _, e in skipped)
    with pytest.raises(MissingRecordError): list(ptbxl.iter_records(lacking, fs=500, progress=False))


def test_channels_subset():
    r = read_record(DATA / "mitbih/s0010_re", channels=["i", "AVR", "v6"])
    assert r.present_leads == ("I", "aVR", "V6") and (r.signal[~r.mask] == 0).all()
    with pytest.raises(UnknownLeadError, match="'vx'"): read_record(DATA / "mitbih/100", channels=["vx"])


# ---------------------------------------------------------------- bad input

def test_truncated_dat(tmp_path):
    p = copy_record(REC1, tmp_path)
    dat = p.with_name(p.name + ".dat")
    dat.write_bytes(dat.read_bytes()[:20000])
    with pytest.raises(RecordReadError) as e: read_record(p)
    m = str(e.value)
    assert "Truncated" in m and str(dat) in m and "24000 bytes" in m and "20000 bytes" in m and "Re-download" in m


def test_truncated_dat_format_212(tmp_path):
    p = copy_record(DATA / "mitbih/100", tmp_path)
    dat = p.with_name("100.dat")
    dat.write_bytes(dat.read_bytes()[:1_000_001])
    with pytest.raises(RecordReadError, match=r"1950000 bytes.*1000001 bytes"): read_record(p)


def test_header_promises_fewer_samples(tmp_path):
    p = copy_record(REC1, tmp_path)
    rewrite_header(p, lambda t: t.replace("00001_lr 12 100 1000", "00001_lr 12 100 900", 1))
    with pytest.raises(RecordReadError) as e: read_record(p)
    assert "disagree" in str(e.value) and "21600 bytes" in str(e.value) and "24000 bytes" in str(e.value)


def test_header_checksum_mismatch(tmp_path):
    p = copy_record(REC1, tmp_path)
    rewrite_header(p, lambda t: t.replace("16 0 -119 1508 0 I", "16 0 -119 1509 0 I"))
    with pytest.raises(RecordReadError) as e: read_record(p)
    assert "disagree" in str(e.value) and "checksum 1509" in str(e.value) and "1508" in str(e.value)


def test_header_drops_a_signal(tmp_path):  # header says 11 channels, the file holds 12
    p = copy_record(REC1, tmp_path)
    rewrite_header(p, lambda t: "".join(l for l in t.replace("00001_lr 12 100", "00001_lr 11 100").splitlines(True)
                                        if not l.rstrip().endswith(" V6")))
    with pytest.raises(RecordReadError) as e: read_record(p)
    assert "disagree" in str(e.value) and "11 channels" in str(e.value) and "22000 bytes" in str(e.value)


def test_unknown_lead_name(tmp_path):
    p = copy_record(REC1, tmp_path)
    rewrite_header(p, lambda t: t.replace(" 0 V1\n", " 0 FOO\n"))
    with pytest.raises(UnknownLeadError) as e: read_record(p)
    m = str(e.value)
    assert "'FOO'" in m and str(p) in m and "lead_map" in m and "V1" in m
    r = read_record(p, lead_map={"FOO": "V1"})
    assert r.mask.all()
    r = read_record(p, lead_map={"FOO": None})
    assert not r.mask[LEADS12.index("V1")] and "FOO" in r.extra


def test_duplicated_lead_names(tmp_path):
    p = copy_record(REC1, tmp_path)
    rewrite_header(p, lambda t: t.replace(" 0 V2\n", " 0 V1\n"))
    with pytest.raises(DuplicateLeadError) as e: read_record(p)
    assert "['V1']" in str(e.value) and "more than once" in str(e.value) and str(p) in str(e.value)
    q = copy_record(REC1, tmp_path / "q" if (tmp_path / "q").mkdir() is None else tmp_path)
    rewrite_header(q, lambda t: t.replace(" 0 V2\n", " 0 v1\n"))  # distinct strings, same lead
    with pytest.raises(DuplicateLeadError, match=r"'V1' and 'v1'.*lead V1"): read_record(q)


def test_nan_lead(tmp_path, caplog):
    sig = ecg_like()
    sig[:, 4] = np.nan
    sig[100:120, 7] = np.nan
    p = write_record(tmp_path, sig)
    with caplog.at_level(logging.WARNING, logger="ecgmeta.data"):
        r = read_record(p)
    assert r.mask.tolist() == [i not in (4, 7) for i in range(12)]
    assert (r.signal[[4, 7]] == 0).all() and np.isfinite(r.signal).all()
    assert "aVL (1000/1000 NaN)" in caplog.text and "V2 (20/1000 NaN)" in caplog.text
    with pytest.raises(SignalQualityError) as e: read_record(p, check_quality=True)
    assert "NaN" in str(e.value) and "aVL" in str(e.value) and str(p) in str(e.value) and "check_quality=False" in str(e.value)


def test_flat_lead(tmp_path):
    sig = ecg_like()
    sig[:, 9] = 0.25
    p = write_record(tmp_path, sig)
    assert read_record(p).mask.all()  # not checked unless asked
    with pytest.raises(SignalQualityError) as e: read_record(p, check_quality=True)
    assert "flat" in str(e.value) and "['V4']" in str(e.value) and str(p) in str(e.value)
    read_record(write_record(tmp_path, ecg_like(), name="ok"), check_quality=True)


def test_wrong_fs(ptbxl):
    with pytest.raises(SamplingRateError) as e: read_record(REC1, fs=500)
    m = str(e.value)
    assert "100 Hz" in m and "fs=500 Hz" in m and "ecgmeta.preprocess.resample" in m and str(REC1) in m
    with pytest.raises(SamplingRateError, match="100 or 500"): ptbxl.record(1, fs=250)


def test_missing_ids(ptbxl):
    with pytest.raises(MissingRecordError) as e: ptbxl.check_ids([1, 424242, 515151])
    assert "[424242, 515151]" in str(e.value) and "ptbxl_database.csv" in str(e.value)
    with pytest.raises(MissingRecordError, match="424242"): ptbxl.record(424242)
    with pytest.raises(MissingRecordError, match="nothere.hea"): read_record(DATA / "nothere")


def test_missing_500hz_file(ptbxl):
    have = set(ptbxl.available_ids(500).tolist())
    i = next(int(i) for i in ptbxl.ids if int(i) not in have)
    with pytest.raises(MissingRecordError) as e: ptbxl.record(i, fs=500)
    m = str(e.value)
    assert f"{i:05d}_hr.hea" in m and "only 400 records500" in m and "records500_included.txt" in m and "fs=100" in m


def test_duplicated_ids(tmp_path):
    shutil.copy(PTB / "scp_statements.csv", tmp_path)
    lines = (PTB / "ptbxl_database.csv").read_text().splitlines(keepends=True)
    (tmp_path / "ptbxl_database.csv").write_text("".join(lines[:10] + [lines[3]]))
    with pytest.raises(DuplicateIdError) as e: PTBXL(tmp_path)
    assert "[3]" in str(e.value) and "ptbxl_database.csv" in str(e.value) and "Remove" in str(e.value)


def test_bad_layout(tmp_path):
    shutil.copy(PTB / "ptbxl_database.csv", tmp_path)
    with pytest.raises(MissingRecordError) as e: PTBXL(tmp_path)
    assert "scp_statements.csv" in str(e.value) and str(tmp_path) in str(e.value)
    with pytest.raises(MissingRecordError, match="not a folder"): PTBXL(tmp_path / "nope")
