"""`ecgmeta.plots` returns figures, never shows them, and draws on true-scale ECG paper."""
import os
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from ecgmeta.data import LEADS12, read_annotations, read_record
from ecgmeta.plots import PlotError, plot_ecg, plot_record_with_annotations

DATA = Path(os.environ.get("ECGMETA_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def no_show(monkeypatch):
    def boom(*a, **k): raise AssertionError("plt.show() called")
    monkeypatch.setattr(plt, "show", boom)
    yield
    plt.close("all")


def test_plot_ecg_record_tensor_and_given_axes(tmp_path):
    rec = read_record(DATA / "ptbxl" / "records100" / "00000" / "00001_lr")
    fig = plot_ecg(rec)
    assert isinstance(fig, matplotlib.figure.Figure)
    ax = fig.axes[0]
    assert ax.get_aspect() == 1.0 and ax.get_xlim() == (-10.0, 250.0)
    labels = [t.get_text() for t in ax.texts]
    assert all(l in labels for l in LEADS12)
    fig.savefig(tmp_path / "ecg.png")
    assert (tmp_path / "ecg.png").stat().st_size > 10_000
    fig2, ax2 = plt.subplots()
    out = plot_ecg(torch.from_numpy(rec.signal), fs=100, ax=ax2, title="tensor")
    assert out is fig2 and ax2.get_title(loc="left") == "tensor"


def test_absent_leads_and_errors():
    rec = read_record(DATA / "mitbih" / "100")  # leads MLII (-> II) and V5 only
    fig = plot_ecg(rec, seconds=10)
    absent = fig.axes[0]._ecg_absent
    assert sorted(absent) == sorted(l for l in LEADS12 if l not in ("II", "V5"))
    assert sum(t.get_text() == "absent" for t in fig.axes[0].texts) == 10
    with pytest.raises(PlotError, match="needs its sampling rate"):
        plot_ecg(np.zeros((12, 100)))
    with pytest.raises(PlotError, match="rhythm_lead"):
        plot_ecg(rec, rhythm_lead="MLII")


def test_annotated_long_record():
    rec, ann = read_record(DATA / "mitbih" / "100"), read_annotations(DATA / "mitbih" / "100")
    fig = plot_record_with_annotations(rec, ann, start=0, seconds=20, leads=["II"])
    n_beats = sum(1 for a in ann if a.time < 20 and a.is_beat)
    assert sum(t.get_text() in {"N", "A", "V"} for t in fig.axes[0].texts) == n_beats > 15
    cp = DATA / "cpsc2021" / "data_101_6"
    fig = plot_record_with_annotations(read_record(cp), read_annotations(cp), start=10, seconds=20)
    assert any(t.get_text() == "(AFIB" for t in fig.axes[0].texts)
