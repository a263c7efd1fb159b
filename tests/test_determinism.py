"""Question generation, class splits and episode streams must not depend on Python's hash seed.

`PYTHONHASHSEED` changes the iteration order of sets of strings between processes; anything that iterates
a set while generating questions, splitting classes or drawing episodes would give a user a different
meta-test set on every run. Two subprocesses with different hash seeds must agree byte for byte.
"""
import os, subprocess, sys
from pathlib import Path

DATA = Path(os.environ.get("ECGMETA_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

SCRIPT = r"""
import hashlib, sys
from ecgmeta.data import PTBXL
from ecgmeta.qa import generate_questions, load_ecgqa
from ecgmeta.episodes import build_classes, split_classes, EpisodeSampler
data = sys.argv[1]
p = PTBXL(data + "/ptbxl")
items = generate_questions(p, seed=0)
classes, _ = build_classes(items)
sp = split_classes(classes, p)
eps = [e for _, e in zip(range(5), EpisodeSampler(sp.test, 5, 5, 5, seed=1))]
q = load_ecgqa(data)
parts = [[(i.question, sorted(i.answer), i.ecg_ids, i.template_id) for i in items],
         [c.key for c in sp.train + sp.val + sp.test],
         [(e.classes, [(i.question, i.ecg_ids) for i in e.support + e.query]) for e in eps],
         [c.key for c in build_classes([i for v in q.values() for i in v], min_items=2)[0]]]
print(" ".join(hashlib.sha256(repr(x).encode()).hexdigest()[:16] for x in parts), len(items), len(sp.test))
"""

def _run(hash_seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(DATA)], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout.strip().splitlines()[-1]

def test_questions_splits_episodes_independent_of_hash_seed():
    a, b = _run("1"), _run("3")
    n_items, n_test = map(int, a.split()[-2:])
    assert n_items > 1000 and n_test >= 5, a   # a real question set and a real meta-test split
    assert a == b, f"hash seed 1 gave {a}, hash seed 3 gave {b}"
