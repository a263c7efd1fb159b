"""Fail when a notebook is not clean or when `ecgmeta/` is out of sync with the notebooks.

Runs `nbdev-clean` and `nbdev-export` on a scratch copy of the repository, so a failing check never
rewrites the working tree, and reports every file that the two commands would change.
"""
from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _snapshot(root: Path) -> dict[str, bytes]:
    files = list((root / "nbs").rglob("*.ipynb")) + list((root / "ecgmeta").rglob("*.py"))
    return {str(p.relative_to(root)): p.read_bytes() for p in files if ".ipynb_checkpoints" not in p.parts}


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "repo"
        ignore = shutil.ignore_patterns(".venv", ".git", "_docs", "_proc", "outputs", ".gpu", "__pycache__")
        shutil.copytree(ROOT, work, ignore=ignore)
        before = _snapshot(work)
        for cmd in (["nbdev-clean"], ["nbdev-export"]):
            r = subprocess.run([str(BIN / cmd[0]), *cmd[1:]], cwd=work, capture_output=True, text=True)
            if r.returncode != 0:
                print(f"{cmd[0]} failed:\n{r.stdout}\n{r.stderr}", file=sys.stderr)
                return 1
        after = _snapshot(work)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    if changed:
        print("These files change under nbdev-clean / nbdev-export:", file=sys.stderr)
        for k in changed: print(f"  {k}", file=sys.stderr)
        print("Fix: run `nbdev-export && nbdev-clean` and commit both the notebooks and ecgmeta/.", file=sys.stderr)
        return 1
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "make_readme.py"), "--check"])
    if r.returncode != 0: return 1
    print(f"notebooks clean, ecgmeta/ and README.md in sync ({len(after)} files checked)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
