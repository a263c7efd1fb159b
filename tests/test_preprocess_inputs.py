"""Bad input to `ecgmeta.preprocess` fails with `PreprocessError` naming the problem; keys are stable."""
import subprocess
import sys

import numpy as np
import pytest

from ecgmeta.data import ECGMetaError
from ecgmeta.preprocess import (PreprocessConfig, PreprocessError, bandpass, crop_or_pad, normalize, remove_baseline,
                                resample, select_leads)

X = np.random.default_rng(0).normal(size=(12, 1000)).astype(np.float32)
M = np.ones(12, bool)


def test_error_is_ecgmeta_error():
    assert issubclass(PreprocessError, ECGMetaError) and issubclass(PreprocessError, ValueError)


@pytest.mark.parametrize("fn", [lambda x: resample(x, 100, 50), lambda x: bandpass(x, 100),
                                lambda x: remove_baseline(x, 100), lambda x: normalize(x, M),
                                lambda x: crop_or_pad(x, 500), lambda x: select_leads(x, M, ["II"])])
def test_nan_input_is_named(fn):
    x = X.copy(); x[4, 17] = np.nan
    with pytest.raises(PreprocessError, match=r"NaN/inf samples \(first at index \(4, 17\)\)"):
        fn(x)


@pytest.mark.parametrize("fs", [0, -100, float("nan"), None])
def test_bad_fs(fs):
    with pytest.raises(PreprocessError, match="positive"):
        bandpass(X, fs)


@pytest.mark.parametrize("n", [0, -5, 2.5, True])
def test_bad_length(n):
    with pytest.raises(PreprocessError, match="positive integer length n"):
        crop_or_pad(X, n)


def test_bad_shapes_and_names():
    with pytest.raises(PreprocessError, match=r"expected shape \(leads, samples\)"):
        normalize(X[0], None)
    with pytest.raises(PreprocessError, match="expected at least one sample"):
        resample(np.zeros((12, 0)), 100, 50)
    with pytest.raises(PreprocessError, match="unknown lead 'aVX'; expected one of I, II"):
        select_leads(X, M, ["aVX"])
    with pytest.raises(PreprocessError, match="expected a numeric array"):
        resample(np.array([["a"]]), 100, 50)


def test_no_nan_out_of_flat_or_masked_leads():
    x = X.copy(); x[2] = 3.0; m = M.copy(); m[5] = False
    for method in ("zscore", "minmax"):
        z = normalize(x, m, method)
        assert np.isfinite(z).all() and not z[5].any() and not z[2].any()


def test_batched_and_resample_rates():
    xb = np.stack([X, X])
    assert resample(xb, 500, 100).shape == (2, 12, 200)
    assert resample(X, 360, 100).shape == (12, 278)
    assert remove_baseline(xb, 100).shape == xb.shape


def test_key_is_stable_across_processes():
    code = "from ecgmeta.preprocess import PreprocessConfig as C; print(C(fs=250, baseline='median').key())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == PreprocessConfig(fs=250, baseline="median").key()
    assert len({PreprocessConfig().key(), PreprocessConfig(bandpass=None).key(), PreprocessConfig(seconds=5).key(),
                PreprocessConfig(normalize=None).key()}) == 4


def test_config_validation():
    with pytest.raises(PreprocessError, match="PreprocessConfig.normalize: expected None, 'zscore' or 'minmax'"):
        PreprocessConfig(normalize="robust")
    with pytest.raises(PreprocessError, match=r"expected \(low, high\)"):
        PreprocessConfig(bandpass=(1.0,))
    with pytest.raises(Exception):
        PreprocessConfig().fs = 1  # frozen
