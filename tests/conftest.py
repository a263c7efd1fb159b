"Fixtures shared by the test files: the sample PTB-XL and its generated question classes (built once per session)."
import os
from pathlib import Path

import pytest

DATA = Path(os.environ.get("ECGMETA_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture(scope="session")
def ptbxl():
    from ecgmeta.data import PTBXL
    return PTBXL(DATA / "ptbxl")


@pytest.fixture(scope="session")
def classes(ptbxl):
    from ecgmeta.episodes import build_classes
    from ecgmeta.qa import generate_questions
    return build_classes(generate_questions(ptbxl, seed=0), min_items=10)[0]
