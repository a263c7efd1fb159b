"""Property-based tests (hypothesis) of the readers, the preprocessing and the episode sampler (issue 18).

Readers: random valid WFDB records written with wfdb read back exactly (canonical rows, mask, fs, mV); damaged ones
(bad sampling rates, truncated signal files, edited headers) raise an `ECGMetaError` and nothing else.
Preprocessing: shapes, dtypes and invariants for any real input dtype; NaN is refused. Sampler: support and query
disjoint (items and ECGs), N/K/Q counts, reproducible from a seed and from a saved state.
"""
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import wfdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecgmeta.cache import data_info
from ecgmeta.data import LEADS12, ECGMetaError, RecordReadError, read_header, read_record
from ecgmeta.preprocess import (PreprocessConfig, PreprocessError, bandpass, crop_or_pad, normalize, resample,
                                select_leads)

SETTINGS = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
FAST = settings(max_examples=40, **SETTINGS)
SLOW = settings(max_examples=20, **SETTINGS)

# ------------------------------------------------------------------------------------------------------------------
# readers

SPELLINGS = {l: [l, l.upper(), l.lower()] for l in LEADS12} | {"II": ["II", "ii", "MLII"], "I": ["I", "i", "D1"]}


@st.composite
def wfdb_records(draw):
    "A random valid WFDB record: `(lead names, header spellings, fs, units, signal (n, c) in those units)`."
    leads = draw(st.lists(st.sampled_from(LEADS12), min_size=1, max_size=5, unique=True))
    names = [draw(st.sampled_from(SPELLINGS[l])) for l in leads]
    fs = draw(st.sampled_from([50, 100, 128, 250, 257.5, 360, 500, 1000]))
    n = draw(st.integers(1, 400))
    units = draw(st.sampled_from(["mV", "uV"]))
    scale = 1.0 if units == "mV" else 1000.0
    sig = draw(st.lists(st.floats(-5, 5, allow_nan=False, width=32), min_size=n * len(leads), max_size=n * len(leads)))
    return leads, names, fs, units, np.array(sig, dtype=np.float64).reshape(n, len(leads)) * scale


def _write(d: Path, rec, name="r"):
    leads, names, fs, units, sig = rec
    gain = 1000.0 if units == "mV" else 1.0
    wfdb.wrsamp(name, fs=fs, units=[units] * len(names), sig_name=names, p_signal=sig, fmt=["16"] * len(names),
                adc_gain=[gain] * len(names), baseline=[0] * len(names), write_dir=str(d))
    return d / name


@FAST
@given(wfdb_records())
def test_valid_records_read_back(rec):
    leads, names, fs, units, sig = rec
    with tempfile.TemporaryDirectory() as d:
        r = read_record(_write(Path(d), rec))
        assert r.signal.dtype == np.float32 and r.signal.shape == (12, len(sig)) and r.fs == fs
        assert r.present_leads == tuple(l for l in LEADS12 if l in leads)
        to_mv = 1.0 if units == "mV" else 1e-3
        for c, l in enumerate(leads):
            np.testing.assert_allclose(r.signal[LEADS12.index(l)], sig[:, c] * to_mv, atol=1e-3 + 1e-6)
        assert not r.signal[~r.mask].any() and read_header(Path(d) / "r").fs == fs


BAD_FS = ["-100", "0", "0.0", "-0.5", "nan", "NaN", "inf", "-inf", "abc", "1e400", "1e-400", "--5", "100x"]


@FAST
@given(wfdb_records(), st.sampled_from(BAD_FS))
def test_bad_sampling_rate_is_refused(rec, bad):
    "wfdb reads some of these as 250 Hz or 0 Hz; we refuse every one, naming the header."
    with tempfile.TemporaryDirectory() as d:
        p = _write(Path(d), rec)
        h = p.with_suffix(".hea"); first, rest = h.read_text().split("\n", 1)
        f = first.split(); f[2] = bad; h.write_text(" ".join(f) + "\n" + rest)
        for fn in (read_header, read_record):
            with pytest.raises(RecordReadError, match="r.hea"): fn(p)
        assert "1 broken" in data_info(Path(d))


@FAST
@given(wfdb_records(), st.data())
def test_truncated_signal_file(rec, data):
    with tempfile.TemporaryDirectory() as d:
        p = _write(Path(d), rec)
        dat = p.with_suffix(".dat"); b = dat.read_bytes()
        k = data.draw(st.integers(0, len(b) - 1))
        dat.write_bytes(b[:k])
        with pytest.raises(RecordReadError, match="r.dat"): read_record(p)


EDITS = st.sampled_from(["delete", "insert", "replace_line", "drop_line", "duplicate_line", "swap_fields"])


@SLOW
@given(wfdb_records(), st.lists(st.tuples(EDITS, st.integers(0, 10**6), st.text(min_size=1, max_size=12)), min_size=1, max_size=4))
def test_edited_headers_fail_only_with_our_errors(rec, edits):
    "Whatever the edits, reading raises an `ECGMetaError` or returns a well-formed `Record`; `data info` never fails."
    with tempfile.TemporaryDirectory() as d:
        p = _write(Path(d), rec)
        h = p.with_suffix(".hea"); text = h.read_text()
        for kind, pos, s in edits:
            lines = text.splitlines() or [""]
            i, j = pos % max(1, len(text)), pos % len(lines)
            if kind == "delete": text = text[:i] + text[i + len(s):]
            elif kind == "insert": text = text[:i] + s + text[i:]
            elif kind == "replace_line": lines[j] = s; text = "\n".join(lines)
            elif kind == "drop_line": del lines[j]; text = "\n".join(lines)
            elif kind == "duplicate_line": lines.insert(j, lines[j]); text = "\n".join(lines)
            else:
                f = lines[j].split(); f.reverse(); lines[j] = " ".join(f); text = "\n".join(lines)
        h.write_text(text + "\n", errors="replace")
        try: r = read_record(p)
        except ECGMetaError: pass
        else:
            assert r.signal.dtype == np.float32 and r.signal.shape[0] == 12 and math.isfinite(r.fs) and r.fs > 0
            assert np.isfinite(r.signal).all() and r.mask.dtype == bool
        assert "WFDB folder" in data_info(Path(d))


DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
COLUMNS = ["ecg_id", "patient_id", "age", "sex", "strat_fold", "scp_codes", "filename_lr", "filename_hr"]
CELLS = st.one_of(st.text(max_size=12), st.integers(-20, 20).map(str), st.floats(allow_nan=True).map(str),
                  st.sampled_from(["", "nan", "1e400", "{'NORM': 'x'}", "{'NORM': 1e999}", "{1: 2}", "{[1]: 2}", "[]",
                                   "../x", "/abs", "C:/x", "records100/00000/00001_lr", "3.0", "True"]))


@FAST
@given(st.lists(st.tuples(st.sampled_from(COLUMNS), st.integers(0, 39), CELLS), min_size=1, max_size=3))
def test_ptbxl_table_cells(edits):
    "A PTB-XL table with edited cells loads with checked types or fails with an `ECGMetaError` naming the file."
    import os
    import pandas as pd
    from ecgmeta.data import PTBXL
    root = Path(os.environ.get("ECGMETA_DATA", DATA)) / "ptbxl"
    db = pd.read_csv(root / "ptbxl_database.csv", dtype=str, nrows=40)
    for col, row, value in edits: db.loc[row, col] = value
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "scp_statements.csv").write_bytes((root / "scp_statements.csv").read_bytes())
        db.to_csv(Path(d) / "ptbxl_database.csv", index=False)
        try: px = PTBXL(d)
        except ECGMetaError as e:
            assert "ptbxl_database.csv" in str(e)
            return
    t = px.db
    assert t.index.is_unique and t.index.dtype.kind == "i" and t.strat_fold.between(1, 10).all()
    assert all(isinstance(v, float) and math.isfinite(v) for c in t.scp_codes for v in c.values())
    assert all(not Path(f).is_absolute() and ".." not in Path(f).parts for f in pd.concat([t.filename_lr, t.filename_hr]))
    assert set(px.db.split) <= {"train", "val", "test"} and len(px.labels("superclass")) == len(t)


# ------------------------------------------------------------------------------------------------------------------
# preprocessing

DTYPES = st.sampled_from([np.float32, np.float64, np.float16, np.int16, np.int32])


@st.composite
def signals(draw, leads=12, min_n=1, max_n=600):
    n = draw(st.integers(min_n, max_n))
    dtype = draw(DTYPES)
    seed = draw(st.integers(0, 2**31))
    x = np.random.default_rng(seed).normal(size=(leads, n)) * draw(st.sampled_from([0.01, 1.0, 100.0]))
    if np.issubdtype(dtype, np.integer): x = np.round(x * 10)
    return x.astype(dtype)


@FAST
@given(signals(), st.sampled_from([50, 100, 125, 250, 360, 500]), st.sampled_from([50, 100, 250, 500]))
def test_resample_length_and_dtype(x, fs_in, fs_out):
    y = resample(x, fs_in, fs_out)  # polyphase: ceil(n * up / down) samples
    assert y.dtype == np.float32 and y.shape == (12, -(-x.shape[-1] * fs_out // fs_in)) and np.isfinite(y).all()
    if fs_in == fs_out: np.testing.assert_array_equal(y, x.astype(np.float32))


@FAST
@given(signals(), st.integers(1, 800), st.sampled_from(["center", "start"]))
def test_crop_or_pad_keeps_a_window(x, n, mode):
    y = crop_or_pad(x, n, mode)
    L = x.shape[-1]
    assert y.shape == (12, n) and y.dtype == (x.dtype if x.dtype.kind == "f" else np.float32)  # integers become float32
    if L >= n:  # a contiguous window of the input
        s = 0 if mode == "start" else (L - n) // 2
        np.testing.assert_array_equal(y, x[:, s:s + n])
    else:  # the whole input, padded with zeros
        s = 0 if mode == "start" else (n - L) // 2
        np.testing.assert_array_equal(y[:, s:s + L], x)
        assert not y[:, :s].any() and not y[:, s + L:].any()


@FAST
@given(signals(min_n=2), st.lists(st.booleans(), min_size=12, max_size=12), st.sampled_from(["zscore", "minmax", None]))
def test_normalize_invariants(x, mask, method):
    m = np.array(mask)
    y = normalize(x, m, method)
    assert y.dtype == np.float32 and y.shape == x.shape and np.isfinite(y).all()
    assert not y[~m].any()
    xf = x.astype(np.float64)
    for i in np.flatnonzero(m):
        if method == "zscore" and xf[i].std() > 1e-3:
            assert abs(y[i].mean()) < 1e-3 and abs(y[i].std() - 1) < 1e-2
        if method == "minmax" and np.ptp(xf[i]) > 1e-3:
            assert y[i].min() >= -1 - 1e-5 and y[i].max() <= 1 + 1e-5


@FAST
@given(signals(), st.lists(st.booleans(), min_size=12, max_size=12), st.lists(st.sampled_from(LEADS12), min_size=1, max_size=12))
def test_select_leads(x, mask, keep):
    xs, ms = select_leads(x, np.array(mask), keep)
    want = np.array([l in keep for l in LEADS12]) & np.array(mask)
    np.testing.assert_array_equal(ms, want)
    assert not xs[~want].any()
    np.testing.assert_array_equal(xs[want], x[want])


@FAST
@given(signals(min_n=30), st.integers(0, 11), st.integers(0, 10**6), st.sampled_from([np.nan, np.inf, -np.inf]))
def test_non_finite_input_is_refused(x, lead, pos, bad):
    x = x.astype(np.float32); x[lead, pos % x.shape[1]] = bad
    for f in (lambda: resample(x, 100, 50), lambda: bandpass(x, 100), lambda: normalize(x),
              lambda: crop_or_pad(x, 10), lambda: PreprocessConfig().apply_signal(x, np.ones(12, bool), 100)):
        with pytest.raises(PreprocessError, match=f"first at index \\({lead}, {pos % x.shape[1]}\\)"): f()


@SLOW
@given(signals(min_n=100, max_n=3000), st.sampled_from([100, 250, 360, 500]),
       st.builds(PreprocessConfig, fs=st.sampled_from([50, 100, 250]), seconds=st.sampled_from([1.0, 2.5, 10.0]),
                 bandpass=st.sampled_from([None, (0.5, 40.0), (1.0, 20.0), (None, 15.0)]),
                 baseline=st.sampled_from([None, "median", "highpass"]), normalize=st.sampled_from([None, "zscore", "minmax"]),
                 crop=st.sampled_from(["center", "start"])))
def test_recipe_output(x, fs, cfg):
    "Any real dtype in, float32 `(12, fs*seconds)` out, masked rows zero, no NaN."
    mask = np.ones(12, bool); mask[3] = False
    try: y, m = cfg.apply_signal(x, mask, fs)
    except PreprocessError as e:  # only a record too short for the filter may be refused
        assert "the filter needs more than" in str(e); return
    assert y.dtype == np.float32 and y.shape == (12, cfg.n_samples) and np.isfinite(y).all()
    assert (m == mask).all() and not y[3].any()


@FAST
@given(st.one_of(st.integers(-10, 0), st.floats(allow_nan=True, allow_infinity=True).filter(lambda v: not v > 0 or math.isinf(v)),
                 st.booleans(), st.text(max_size=5), st.none()))
def test_bad_sampling_rates_are_refused(fs):
    with pytest.raises(PreprocessError, match="fs"): bandpass(np.zeros((12, 100)), fs)
    with pytest.raises(PreprocessError, match="PreprocessConfig.fs"): PreprocessConfig(fs=fs)


# ------------------------------------------------------------------------------------------------------------------
# the episode sampler

@st.composite
def task_classes(draw):
    "Classes over a small pool of ECG ids (so items share ECGs), some asking the same question with other answers."
    from ecgmeta.episodes import TaskClass
    from ecgmeta.qa import QAItem
    n_classes = draw(st.integers(2, 8))
    pool = draw(st.integers(20, 200))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    classes, sid = [], 0
    for c in range(n_classes):
        template, answer = draw(st.integers(100, 102)), (f"a{c}",)
        items = []
        for _ in range(draw(st.integers(6, 14))):
            ecgs = tuple(int(e) for e in rng.choice(pool, size=draw(st.integers(1, 2)), replace=False) + 1)
            items.append(QAItem(question=f"q{template}", answer=answer, question_type="single-verify", template_id=template,
                                attribute_type="scp_code", attributes=("NORM",), ecg_ids=ecgs, sample_id=sid,
                                question_id=template, source="generated"))
            sid += 1
        classes.append(TaskClass(template, ("NORM",), answer, tuple(items)))
    return classes


@FAST
@given(task_classes(), st.integers(1, 4), st.integers(1, 3), st.integers(0, 2), st.integers(0, 2**32 - 1), st.booleans())
def test_sampler_invariants(classes, n, k, q, seed, contrastive):
    from ecgmeta.episodes import EpisodeSampler
    n = min(n, len(classes))
    mk = lambda: EpisodeSampler(classes, n_way=n, k_shot=k, q_query=q, seed=seed, contrastive=contrastive, max_tries=20)
    a, b = mk(), mk()
    by_key = {c.key: {it.sample_id for it in c.items} for c in classes}
    for i in range(4):
        try: ep = a.sample()
        except ECGMetaError as e:  # classes sharing too many ECGs: said, not a wrong episode
            assert "could not draw" in str(e)
            with pytest.raises(ECGMetaError): b.sample()
            return
        assert ep == b.sample()  # reproducible from the seed
        assert len(set(ep.classes)) == n and len(ep.support) == n * k and len(ep.query) == n * q
        assert [ep.support_labels.count(l) for l in range(n)] == [k] * n
        assert [ep.query_labels.count(l) for l in range(n)] == [q] * n
        for items, labels in ((ep.support, ep.support_labels), (ep.query, ep.query_labels)):
            assert all(it.sample_id in by_key[ep.classes[l]] for it, l in zip(items, labels))
        assert not {it.sample_id for it in ep.support} & {it.sample_id for it in ep.query}
        assert not {e for it in ep.support for e in it.ecg_ids} & {e for it in ep.query for e in it.ecg_ids}
        if i == 1:  # a sampler restored from a saved state continues the same stream
            c = mk(); c.load_state_dict(a.state_dict())
            nxt = a.sample(); assert c.sample() == nxt and b.sample() == nxt
