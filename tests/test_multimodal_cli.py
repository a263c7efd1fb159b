"""`ecgmeta multimodal pretrain` end to end on the real PTB-XL sample."""
import json
import os
from pathlib import Path

from ecgmeta.cli import main
from ecgmeta.encoder import ECGEncoder

DATA = Path(os.environ.get("ECGMETA_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
CACHE = Path(os.environ.get("ECGMETA_CACHE", "/tmp/ecgmeta-cache"))


def test_cli_pretrain_tolerant_then_selfmis(tmp_path, capsys):
    out = tmp_path / "tol"
    rc = main(["multimodal", "pretrain", "--objective", "tolerant", "--data", str(DATA), "--out", str(out),
               "--cache-dir", str(CACHE), "--steps", "2", "--batch-size", "8", "--no-progress"])
    assert rc == 0 and str(out) in capsys.readouterr().out
    assert json.loads((out / "losses.json").read_text())["objective"] == "tolerant"
    ECGEncoder.from_pretrained(out / "encoder")
    rc = main(["multimodal", "pretrain", "--objective", "selfmis", "--teacher", str(out / "encoder"), "--data",
               str(DATA / "ptbxl"), "--out", str(tmp_path / "smis"), "--cache-dir", str(CACHE), "--steps", "2",
               "--batch-size", "8", "--no-progress"])
    assert rc == 0 and (tmp_path / "smis" / "encoder" / "model.safetensors").is_file()


def test_cli_help_lists_subcommands(capsys):
    try: main(["multimodal", "--help"])
    except SystemExit as e: assert e.code == 0
    text = capsys.readouterr().out
    assert "pretrain" in text and "benchmark" in text
