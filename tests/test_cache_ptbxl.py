"""`CachedECGDataset` on the PTB-XL sample: full build, warm load, keys, atomic builds, skipped records."""
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ecgmeta.cache import CacheError, CachedECGDataset, ECGSample, collate_samples
from ecgmeta.data import PTBXL
from ecgmeta.preprocess import PreprocessConfig

DATA = Path(os.environ.get("ECGMETA_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture(scope="module")
def db(): return PTBXL(DATA / "ptbxl")


def test_full_sample_build_and_warm_load(db, tmp_path):
    t0 = time.perf_counter()
    ds = CachedECGDataset(db, tmp_path, progress=False, num_workers=2)
    cold = time.perf_counter() - t0
    assert ds.built and len(ds) == 3005 and ds.skipped == []
    assert ds.signals.shape == (3005, 12, 1000) and ds.signals.dtype == np.float32
    assert isinstance(ds.signals, np.memmap) and ds.masks.all()
    assert sorted(p.name for p in ds.path.iterdir()) == ["ids.npy", "masks.npy", "meta.json", "signals.npy"]
    t0 = time.perf_counter()
    warm = CachedECGDataset(db, tmp_path, progress=False)
    touched = float(np.asarray(warm.signals).sum())
    warm_s = time.perf_counter() - t0
    assert not warm.built and warm.path == ds.path and np.isfinite(touched)
    assert warm_s < cold / 20, (warm_s, cold)
    ids = [21, 1, 1017, 6002]
    x, m = warm.batch(ids)
    assert x.shape == (4, 12, 1000) and x.dtype == torch.float32 and m.dtype == torch.bool
    for k, i in enumerate(ids):
        ref, _ = PreprocessConfig().apply(db.record(i))
        np.testing.assert_allclose(x[k].numpy(), ref, atol=1e-6)
        assert warm.get(i).ecg_id == i and torch.equal(warm.get(i).signal, x[k])
    assert [s.ecg_id for s in warm][:3] == db.ids[:3].tolist()


def test_settings_and_files_change_the_key(db, tmp_path):
    ids = db.ids[:20]
    a = CachedECGDataset(db, tmp_path, ids=ids, progress=False)
    b = CachedECGDataset(db, tmp_path, PreprocessConfig(bandpass=None), ids=ids, progress=False)
    c = CachedECGDataset(db, tmp_path, ids=ids[:10], progress=False)
    assert len({a.path, b.path, c.path}) == 3 and b.built and c.built
    assert not np.allclose(a.signals[0], b.signals[0])
    # a copy of the records: changing one file's content rebuilds
    src = tmp_path / "src"; src.mkdir()
    for i in ids[:3]:
        p = db.record_path(int(i))
        for ext in (".hea", ".dat"): shutil.copy2(p.with_name(p.name + ext), src)
    d1 = CachedECGDataset(src, tmp_path / "c", progress=False)
    d2 = CachedECGDataset(src, tmp_path / "c", progress=False)
    assert d1.built and not d2.built
    f = sorted(src.glob("*.dat"))[0]
    raw = bytearray(f.read_bytes()); raw[100] ^= 1; f.write_bytes(bytes(raw))
    d3 = CachedECGDataset(src, tmp_path / "c", progress=False)
    assert d3.built and d3.path != d1.path


def test_killed_build_leaves_no_cache(db, tmp_path):
    code = ("import sys; from pathlib import Path; from ecgmeta.cache import CachedECGDataset; "
            "from ecgmeta.data import PTBXL; db = PTBXL(sys.argv[1]); "
            "CachedECGDataset(db, Path(sys.argv[2]), ids=db.ids, progress=False)")
    p = subprocess.Popen([sys.executable, "-c", code, str(DATA / "ptbxl"), str(tmp_path)])
    try:  # generous deadline: on a loaded machine importing torch alone can take a minute
        deadline = time.time() + 240
        while time.time() < deadline and p.poll() is None and not list(tmp_path.glob(".tmp-*/signals.npy")): time.sleep(0.05)
        assert p.poll() is None, "the build finished before it could be killed; give it more records"
        assert list(tmp_path.glob(".tmp-*/signals.npy")), "the build never started"
        time.sleep(0.5)
        os.kill(p.pid, signal.SIGKILL)
    finally:
        p.wait()
    assert p.returncode == -signal.SIGKILL
    finished = [d for d in tmp_path.iterdir() if not d.name.startswith(".tmp-")]
    assert finished == []  # only the temporary folder, never a half-written cache
    ds = CachedECGDataset(db, tmp_path, ids=db.ids[:30], progress=False)
    assert ds.built and len(ds) == 30


def test_skipped_records_are_reported(db, tmp_path, caplog):
    src = tmp_path / "src"; src.mkdir()
    for i in db.ids[:4]:
        p = db.record_path(int(i))
        for ext in (".hea", ".dat"): shutil.copy(p.with_name(p.name + ext), src)
    names = sorted(p.stem for p in src.glob("*.hea"))
    dat = src / f"{names[1]}.dat"; dat.write_bytes(dat.read_bytes()[:999])          # truncated
    hea = src / f"{names[2]}.hea"; hea.write_text(hea.read_text().replace(" V1\n", " BOGUS\n", 1))  # unknown lead
    with caplog.at_level(logging.WARNING, logger="ecgmeta.cache"):
        ds = CachedECGDataset(src, tmp_path / "c", progress=False)
    assert list(ds.ids) == [names[0], names[3]]
    reasons = dict(ds.skipped)
    assert set(reasons) == {names[1], names[2]}
    assert names[1] in reasons[names[1]] and "BOGUS" in reasons[names[2]]
    assert "skipped 2 of 4 records" in caplog.text
    again = CachedECGDataset(src, tmp_path / "c", progress=False)  # the list survives a reload
    assert dict(again.skipped) == reasons
    with pytest.raises(CacheError, match="skipped while building"):
        ds.get(names[1])


def test_all_records_failing_is_an_error(tmp_path):
    src = tmp_path / "src"; src.mkdir()
    p = DATA / "ptbxl" / "records100" / "00000" / "00001_lr"
    shutil.copy(p.with_name(p.name + ".hea"), src); (src / "00001_lr.dat").write_bytes(b"\0" * 10)
    with pytest.raises(CacheError, match="every one of the 1 records failed"):
        CachedECGDataset(src, tmp_path / "c", progress=False)
    assert [d.name for d in (tmp_path / "c").iterdir()] == []


def test_dataloader_and_device(db, tmp_path):
    ds = CachedECGDataset(db, tmp_path, ids=db.ids[:10], progress=False)
    dl = torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=collate_samples)
    b = next(iter(dl))
    assert isinstance(b, ECGSample) and b.signal.shape == (4, 12, 1000) and b.ecg_id == db.ids[:4].tolist()
    moved = b.to("cpu", torch.float64)
    assert moved.signal.dtype == torch.float64 and moved.mask.dtype == torch.bool
    with pytest.raises(CacheError, match="is not in the cache"):
        ds.index_of(999)
