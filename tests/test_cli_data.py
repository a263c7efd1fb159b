"""End-to-end runs of `ecgmeta data info|fetch|cache`."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ecgmeta.cli import main

DATA = Path(os.environ.get("ECGMETA_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def test_info_ptbxl(capsys):
    assert main(["data", "info", str(DATA / "ptbxl")]) == 0
    out = capsys.readouterr().out
    assert "records: 3005 (2918 patients)" in out
    assert "100 Hz for 3005 records, 500 Hz for 400 records" in out
    total = next(l for l in out.splitlines() if l.startswith("total")).split()
    assert total[1:] == ["3005", "1444", "668", "707", "605", "352", "60"]  # records, NORM MI STTC CD HYP, none


def test_info_wfdb_folder(capsys):
    assert main(["data", "info", str(DATA / "cpsc2021")]) == 0
    out = capsys.readouterr().out
    assert "records: 18" in out and "fs: 200 Hz: 18 records" in out


def test_info_bad_path(tmp_path, capsys):
    assert main(["data", "info", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ecgmeta: error: ") and "no WFDB headers" in err and err.count("\n") == 1


def test_fetch_from_folder_and_cache(tmp_path, capsys):
    dest = tmp_path / "ptbxl"
    assert main(["data", "fetch", "ptbxl", "--dest", str(dest), "--source", str(DATA / "ptbxl"), "--no-progress",
                 "--files", "*.csv", "records100/00000/0000[1-5]_lr.*"]) == 0
    out = capsys.readouterr().out
    assert f"13 files fetched, 0 already present; PTB-XL written to {dest}" in out
    # the fetched subset is a PTB-XL root whose csv lists all 3,005 rows; cache the 5 records that exist
    src = dest / "records100"
    assert main(["data", "cache", str(src), "--cache-dir", str(tmp_path / "cache"), "--fs", "50",
                 "--seconds", "4", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "5 records cached (0 skipped), built: " in out
    path = Path(out.strip().split("built: ")[1])
    assert path.parent == tmp_path / "cache" and (path / "signals.npy").exists()
    assert main(["data", "cache", str(src), "--cache-dir", str(tmp_path / "cache"), "--fs", "50",
                 "--seconds", "4", "--no-progress"]) == 0
    assert f"reused: {path}" in capsys.readouterr().out


def test_cache_ptbxl_limit(tmp_path, capsys):
    assert main(["data", "cache", str(DATA / "ptbxl"), "--cache-dir", str(tmp_path), "--limit", "12",
                 "--no-bandpass", "--normalize", "none", "--no-progress"]) == 0
    assert "12 records cached (0 skipped), built: " in capsys.readouterr().out


def test_entry_point_help():
    exe = Path(sys.executable).with_name("ecgmeta")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "import sys; from ecgmeta.cli import main; sys.exit(main())"]
    r = subprocess.run(cmd + ["data", "fetch", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--dest" in r.stdout and "--source" in r.stdout


def test_data_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["data", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert all(w in out for w in ("info", "fetch", "cache"))
