"Bootstrap CI and the linear probe on real PTB-XL records (NORM vs MI)."
import os
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ecgmeta.data import PTBXL
from ecgmeta.preprocess import PreprocessConfig
from ecgmeta.probe import (ProbeError, bootstrap_auroc, fit_linear_probe, label_fraction, macro_auroc,
                           summary_features)

DATA = Path(os.environ.get("ECGMETA_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def _synthetic(n, seed=0, shift=1.0):
    g = np.random.default_rng(seed)
    y = g.random((n, 3)) < 0.3
    return y, shift * y + g.normal(size=(n, 3))


def test_macro_auroc_matches_sklearn():
    y, s = _synthetic(400, 1)
    ref = np.mean([roc_auc_score(y[:, j], s[:, j]) for j in range(3)])
    assert macro_auroc(y, s) == pytest.approx(ref, abs=1e-12)
    s[:10] = np.round(s[:10])  # ties
    ref = np.mean([roc_auc_score(y[:, j], s[:, j]) for j in range(3)])
    assert macro_auroc(y, s) == pytest.approx(ref, abs=1e-12)


def test_bootstrap_ci_contains_estimate_and_narrows():
    widths = []
    for n in (100, 400, 1600):
        e = bootstrap_auroc(*_synthetic(n, 2), n_boot=1000, seed=0)
        assert e.low <= e.auroc <= e.high
        assert e.n == n and e.n_boot == 1000
        widths.append(e.high - e.low)
    assert widths[0] > widths[1] > widths[2]
    assert widths[2] < 0.6 * widths[0]  # ~1/sqrt(n): 16x the data, about a quarter of the width


def test_bootstrap_is_seeded_and_covers_truth():
    y, s = _synthetic(300, 3)
    assert bootstrap_auroc(y, s, seed=5) == bootstrap_auroc(y, s, seed=5)
    assert bootstrap_auroc(y, s, seed=5) != bootstrap_auroc(y, s, seed=6)
    e = bootstrap_auroc(*_synthetic(3000, 4), n_boot=500)
    assert e.low < 0.760 < e.high  # true AUROC Phi(1/sqrt 2)


def test_random_scores_are_chance():
    g = np.random.default_rng(0)
    y = g.random((2000, 5)) < 0.3
    e = bootstrap_auroc(y, g.random((2000, 5)), n_boot=300)
    assert e.low < 0.5 < e.high


def test_label_fraction_keeps_every_class():
    g = np.random.default_rng(0)
    y = np.zeros((2000, 5), bool)
    y[:, 0] = g.random(2000) < 0.5
    y[g.choice(2000, 6, replace=False), 4] = True  # a very rare class
    for c in range(1, 4): y[:, c] = g.random(2000) < 0.2
    sub = label_fraction(y, 0.01, seed=1, min_positives=2)
    assert len(sub) == 20 and len(set(sub)) == 20
    assert (y[sub].sum(0) >= 2).all()
    with pytest.raises(ProbeError, match=r"\(0, 1\]"): label_fraction(y, 1.5)


def test_probe_rejects_missing_positive():
    x = np.zeros((10, 3)); y = np.zeros((10, 2), int); y[:5, 0] = 1
    with pytest.raises(ProbeError, match="no positive"):
        fit_linear_probe(x, y, x, y)


@pytest.fixture(scope="module")
def norm_mi(tmp_path_factory):
    "Real records that are NORM only or MI only, 300 of each (folds 1-8 train, 9 select, 10 test)."
    from ecgmeta.cache import CachedECGDataset
    db = PTBXL(DATA / "ptbxl")
    lab = db.labels("superclass")
    only = lambda c: lab.index[(lab[c] == 1) & (lab.sum(axis=1) == 1)]
    g = np.random.default_rng(0)
    ids = np.concatenate([g.choice(only("NORM"), 300, replace=False), g.choice(only("MI"), 300, replace=False)])
    fold = db.strat_fold.loc[ids].to_numpy()
    ds = CachedECGDataset(db, tmp_path_factory.mktemp("cache"), PreprocessConfig(normalize=None), ids=ids,
                          progress=False)
    x, m = ds.batch(ids)
    y = lab.loc[ids, ["NORM", "MI"]].to_numpy()
    return x.numpy(), m.numpy(), y, fold, ds.fs


def test_probe_separates_norm_from_mi_on_real_records(norm_mi):
    x, m, y, fold, fs = norm_mi
    tr, va, te = fold <= 8, fold == 9, fold == 10
    assert te.sum() >= 40 and y[te].sum(0).min() >= 10
    f = summary_features(x, m, fs)
    probe = fit_linear_probe(f[tr], y[tr], f[va], y[va])
    e = bootstrap_auroc(y[te], probe.predict(f[te]), n_boot=500)
    assert e.auroc > 0.7 and e.low > 0.55, e
    # and it is the signal that carries it: shuffling the training labels brings it back to chance
    shuffled = np.random.default_rng(1).permutation(np.flatnonzero(tr))
    chance = fit_linear_probe(f[shuffled], y[tr], f[va], y[va])
    assert macro_auroc(y[te], chance.predict(f[te])) < e.auroc - 0.1
