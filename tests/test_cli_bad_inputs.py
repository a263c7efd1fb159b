"""Every `ecgmeta` sub-command fed bad input (issue 18): a non-zero exit, one error line naming the problem, no
traceback, and nothing changed outside the command's output folder.

Starting a Python that imports torch takes seconds, too slow for a table of many cases; one runner process imports
the command modules once and forks a child process per case (its own exit status, stdout and stderr). Two cases
also run through the installed `ecgmeta` entry point. Every file the cases use lives in a temporary workspace whose
files (sizes and modification times) are compared before and after each case; the sample data is checked too.
"""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ECGMETA_DATA", ROOT.parent / "shared" / "data"))
PTBXL = DATA / "ptbxl"
SHIPPED = ROOT / "ecgmeta" / "checkpoints" / "ecg-encoder-ptbxl-small"
ERROR_LINE = re.compile(r"^ecgmeta(?: [\w-]+)*: error: ", re.M)

RUNNER = r'''
import importlib, json, os, sys, time, traceback
for m in ("ecgmeta.cache", "ecgmeta.fetch", "ecgmeta.pretrain", "ecgmeta.probe", "ecgmeta.multimodal",
          "ecgmeta.trainer", "ecgmeta.evaluate"):
    importlib.import_module(m)
from ecgmeta.cli import main
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    case = json.loads(line)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.chdir(case["cwd"])
            os.environ.update(case["env"])
            for fd, path in ((1, case["stdout"]), (2, case["stderr"])):
                f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC); os.dup2(f, fd); os.close(f)
            try: code = main(case["argv"])
            except SystemExit as e: code = e.code if isinstance(e.code, int) else 1
            except BaseException: traceback.print_exc(); code = 1
        finally:
            sys.stdout.flush(); sys.stderr.flush()
            os._exit(code)
    deadline, status = time.time() + case["timeout"], None
    while status is None:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done: status = st
        elif time.time() > deadline: os.kill(pid, 9); os.waitpid(pid, 0); break
        else: time.sleep(0.01)
    print(json.dumps({"rc": None if status is None else os.waitstatus_to_exitcode(status)}), flush=True)
'''


def snapshot(root: Path, skip: tuple = ()) -> dict:
    "Every file under `root` (but not under `skip`) -> (size, mtime_ns); every folder -> None."
    out = {}
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if Path(d, x) not in skip]
        for x in dirs: out[os.path.relpath(os.path.join(d, x), root)] = None
        for x in files:
            st = os.stat(os.path.join(d, x))
            out[os.path.relpath(os.path.join(d, x), root)] = (st.st_size, st.st_mtime_ns)
    return out


def changes(a: dict, b: dict) -> list[str]:
    return sorted(k for k in a.keys() | b.keys() if a.get(k, "absent") != b.get(k, "absent"))


# ------------------------------------------------------------------------------------------------------------------
# the bad inputs, built once in a temporary workspace

def _ptbxl_variant(dest: Path, col: str | None, value: str | None, row: int = 2, drop_statements=False, raw: bytes | None = None):
    dest.mkdir(parents=True)
    if not drop_statements: shutil.copy(PTBXL / "scp_statements.csv", dest)
    if raw is not None: (dest / "ptbxl_database.csv").write_bytes(raw); return
    db = pd.read_csv(PTBXL / "ptbxl_database.csv", dtype=str)
    if col is not None: db.loc[row, col] = value
    db.to_csv(dest / "ptbxl_database.csv", index=False)


def _encoder_variant(dest: Path, damage: str):
    shutil.copytree(SHIPPED, dest)
    w, cfg = dest / "model.safetensors", json.loads((dest / "config.json").read_text())
    if damage == "truncated": w.write_bytes(w.read_bytes()[:4096])
    elif damage == "pickle":
        import torch
        torch.save({"w": torch.zeros(2)}, dest / "pytorch_model.bin"); w.unlink()
    elif damage == "nan":
        from safetensors.torch import load_file, save_file
        st = load_file(str(w)); st["norm.weight"][0] = float("nan"); save_file(st, str(w))
    elif damage == "json": (dest / "config.json").write_text("{not json")
    elif damage == "key": cfg["preprocesss"] = cfg.pop("preprocess")
    elif damage == "type": cfg["hidden_size"] = "128"
    elif damage == "heads": cfg["num_heads"] = 0
    if damage in ("key", "type", "heads"): (dest / "config.json").write_text(json.dumps(cfg))


def _release(dest: Path, sums: str | None = None, tamper: bool = False):
    "A PTB-XL-like release folder: two files and their SHA256SUMS.txt (or the given text)."
    import hashlib
    dest.mkdir(parents=True)
    files = {"scp_statements.csv": (PTBXL / "scp_statements.csv").read_bytes(), "records100/00000/00001_lr.hea":
             (PTBXL / "records100/00000/00001_lr.hea").read_bytes()}
    lines = []
    for rel, b in files.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_bytes(b + (b"tampered" if tamper and rel.endswith(".csv") else b""))
        lines.append(f"{hashlib.sha256(b).hexdigest()}  {rel}")
    (dest / "SHA256SUMS.txt").write_text(sums if sums is not None else "\n".join(lines) + "\n")


def _wfdb_folder(dest: Path, fs_field: str | None = None, ids=(1, 2)):
    dest.mkdir(parents=True)
    for i in ids:
        for ext in ("hea", "dat"): shutil.copy(PTBXL / "records100" / "00000" / f"{i:05d}_lr.{ext}", dest)
        if fs_field is not None:
            h = dest / f"{i:05d}_lr.hea"
            h.write_text(h.read_text().replace(f"{i:05d}_lr 12 100 1000", f"{i:05d}_lr 12 {fs_field} 1000", 1))


def _pretrain_data(dest: Path, meta: str = '{"fs": 100, "n": 8, "text_families": []}'):
    dest.mkdir(parents=True)
    g = np.random.default_rng(0)
    np.save(dest / "signals.npy", (g.normal(size=(8, 12, 1000)) * 0.3).astype(np.float16))
    np.save(dest / "masks.npy", np.ones((8, 12), bool))
    np.save(dest / "ids.npy", np.arange(1, 9))
    (dest / "meta.json").write_text(meta)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = tmp_path_factory.mktemp("cli_bad_inputs")
    i = ws / "in"
    for sub in ("cwd", "home", "out", "logs"): (ws / sub).mkdir()
    i.mkdir(); (i / "empty").mkdir(); (i / "afile").write_text("not a folder\n")
    _ptbxl_variant(i / "px_fold", "strat_fold", "ten")
    _ptbxl_variant(i / "px_likelihood", "scp_codes", "{'NORM': 'high'}")
    _ptbxl_variant(i / "px_binary", None, None, raw=b"\xff\xfe\x00\x01garbage")
    _ptbxl_variant(i / "px_nostatements", None, None, drop_statements=True)
    _ptbxl_variant(i / "px_dupid", "ecg_id", "1")
    _ptbxl_variant(i / "px_unsafe", "filename_lr", "../../../../etc/passwd")
    _ptbxl_variant(i / "px_ecgid", "ecg_id", "2.5")
    for d in ("truncated", "pickle", "nan", "json", "key", "type", "heads"): _encoder_variant(i / f"enc_{d}", d)
    _release(i / "rel_tampered", tamper=True)
    _release(i / "rel_unsafe", sums="0" * 64 + "  ../evil.txt\n")
    _release(i / "rel_absolute", sums="0" * 64 + "  /etc/passwd\n")
    _release(i / "rel_html", sums="<html><body>404 Not Found</body></html>\n")
    _release(i / "rel_ok")
    _wfdb_folder(i / "wfdb_negfs", "-100", ids=(1,))
    _wfdb_folder(i / "wfdb_zerofs", "0", ids=(1,))
    _wfdb_folder(i / "wfdb_ok")
    _pretrain_data(i / "pdata")
    _pretrain_data(i / "pdata_badmeta", meta="{broken")
    (i / "run_pickle" / "checkpoint").mkdir(parents=True)
    import torch
    torch.save({"step": 1}, i / "run_pickle" / "checkpoint" / "state.pt")
    (i / "run_damaged" / "checkpoint").mkdir(parents=True)
    (i / "run_damaged" / "checkpoint" / "state.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    cfgs = {"bad.json": "{oops", "list.json": "[1, 2]", "unknown.json": '{"hiden_size": 64}',
            "type.json": '{"hidden_size": "128"}', "heads.json": '{"num_heads": 0}', "lr.json": '{"lr": "fast"}',
            "prep.json": '{"preprocess": {"normalise": null}}', "folds.json": '{"folds": [11]}',
            "demo_eval.json": '{"train": {}, "eval": {"n_wya": [5]}}', "tiny.json": json.dumps(
                {"hidden_size": 64, "num_layers": 1, "lead_dim": 32, "log_every": 1, "warmup_steps": 1, "batch_size": 4})}
    for name, text in cfgs.items(): (i / name).write_text(text)
    (i / "model_badjson" / "model").mkdir(parents=True)
    (i / "model_badjson" / "model" / "ecglm_config.json").write_text("{oops")
    (i / "old_run").mkdir()
    (i / "old_run" / "metrics.jsonl").write_text('{"step": 1, "split": "train", "query_loss": 1.0}\n')
    return ws


@pytest.fixture(scope="module")
def runner(ws):
    env = {k: v for k, v in os.environ.items() if k != "ECGMETA_DEBUG"}
    env |= {"HOME": str(ws / "home"), "ECGMETA_CACHE": str(ws / "home" / "ecgmeta-cache"), "HF_HOME": str(ws / "home" / "hf"),
            "MPLCONFIGDIR": str(ws / "home" / "mpl"), "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    p = subprocess.Popen([sys.executable, "-c", RUNNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                         cwd=ws / "cwd", env=env)
    assert json.loads(p.stdout.readline()) == {"ready": True}
    yield p
    p.stdin.close(); p.wait(timeout=60)


@pytest.fixture(scope="module", autouse=True)
def sample_data_untouched():
    before = snapshot(DATA)
    yield
    assert changes(before, snapshot(DATA)) == [], "the sample data was modified"


def run(runner, ws, argv, out=None, env=None, timeout=120):
    "Run one case in a fresh child: `(rc, stdout, stderr, paths changed outside out)`."
    fmt = {"ws": ws, "in": ws / "in", "data": DATA, "ptbxl": PTBXL, "out": out}
    argv = [a.format(**fmt) for a in argv]
    skip = (Path(str(out)), ws / "logs") if out is not None else (ws / "logs",)
    before = snapshot(ws, skip)
    logs = ws / "logs"
    runner.stdin.write(json.dumps({"argv": argv, "cwd": str(ws / "cwd"), "env": env or {}, "timeout": timeout,
                                   "stdout": str(logs / "stdout"), "stderr": str(logs / "stderr")}) + "\n")
    runner.stdin.flush()
    rc = json.loads(runner.stdout.readline())["rc"]
    return rc, (logs / "stdout").read_text(), (logs / "stderr").read_text(), changes(before, snapshot(ws, skip))


# ------------------------------------------------------------------------------------------------------------------
# the table: (id, argv, what the one error line must contain[, out folder relative to ws])

CASES = [
    # argument parsing (argparse's own `PROG: error:` line, status 2)
    ("unknown-command", ["nonsense"], "invalid choice: 'nonsense'"),
    ("cache-limit-negative", ["data", "cache", "{in}/wfdb_ok", "--cache-dir", "{out}", "--limit", "-3"], "--limit: expected a positive integer, got '-3'"),
    ("cache-limit-zero", ["data", "cache", "{in}/wfdb_ok", "--cache-dir", "{out}", "--limit", "0"], "expected a positive integer, got '0'"),
    ("cache-limit-fraction", ["data", "cache", "{in}/wfdb_ok", "--cache-dir", "{out}", "--limit", "1.5"], "expected a positive integer, got '1.5'"),
    ("cache-fs-zero", ["data", "cache", "{in}/wfdb_ok", "--cache-dir", "{out}", "--fs", "0"], "--fs: expected a positive number"),
    ("cache-fs-nan", ["data", "cache", "{in}/wfdb_ok", "--cache-dir", "{out}", "--fs", "nan"], "--fs: expected a positive number"),
    ("cache-workers-negative", ["data", "cache", "{in}/wfdb_ok", "--cache-dir", "{out}", "--num-workers", "-1"], "--num-workers: expected an integer >= 0"),
    ("cache-normalize-choice", ["data", "cache", "{in}/wfdb_ok", "--cache-dir", "{out}", "--normalize", "robust"], "invalid choice: 'robust'"),
    ("fetch-no-dest", ["data", "fetch", "ptbxl"], "the following arguments are required: --dest"),
    ("probe-nboot-zero", ["probe", "--data", "{data}", "--out", "{out}", "--n-boot", "0"], "--n-boot: expected a positive integer"),
    ("pretrain-steps-zero", ["pretrain", "--data", "{in}/pdata", "--out", "{out}", "--steps", "0"], "--steps: expected a positive integer"),
    ("pretrain-lr-negative", ["pretrain", "--data", "{in}/pdata", "--out", "{out}", "--lr", "-1"], "--lr: expected a positive number"),
    ("multimodal-steps-negative", ["multimodal", "benchmark", "--data", "{data}", "--out", "{out}", "--steps", "-1"], "--steps: expected a positive integer"),
    ("meta-train-steps-text", ["meta-train", "--meta-steps", "many"], "invalid int value: 'many'"),
    ("evaluate-episodes-fraction", ["evaluate", "--model", "{in}/nomodel", "--data", "{data}", "--out", "{out}", "--episodes", "2.5"], "invalid int value: '2.5'"),
    # data info: bad paths and bad PTB-XL tables
    ("info-missing", ["data", "info", "{in}/nowhere"], "nowhere: expected a PTB-XL root or a folder of WFDB records"),
    ("info-empty", ["data", "info", "{in}/empty"], "no WFDB headers (*.hea) found"),
    ("info-file", ["data", "info", "{in}/afile"], "it is not a folder"),
    ("info-strat-fold", ["data", "info", "{in}/px_fold"], "column strat_fold must hold an integer fold 1-10; ecg_id(s) [3]"),
    ("info-likelihood", ["data", "info", "{in}/px_likelihood"], "ecg_id 3 has non-numeric likelihood(s) {'NORM': 'high'}"),
    ("info-binary-csv", ["data", "info", "{in}/px_binary"], "ptbxl_database.csv as CSV"),
    ("info-no-statements", ["data", "info", "{in}/px_nostatements"], "lacks ['scp_statements.csv']"),
    ("info-duplicate-id", ["data", "info", "{in}/px_dupid"], "lists ecg_id(s) [1] more than once"),
    ("info-unsafe-filename", ["data", "info", "{in}/px_unsafe"], "column filename_lr must hold a record path relative"),
    ("info-fractional-id", ["data", "info", "{in}/px_ecgid"], "column ecg_id must hold whole numbers; CSV line(s) [4]"),
    # data cache
    ("cache-missing-source", ["data", "cache", "{in}/nowhere", "--cache-dir", "{out}"], "this path is not a folder"),
    ("cache-no-headers", ["data", "cache", "{in}/empty", "--cache-dir", "{out}"], "no WFDB headers"),
    ("cache-negative-fs-header", ["data", "cache", "{in}/wfdb_negfs", "--cache-dir", "{out}", "--no-progress"], "sampling rate '-100'"),
    ("cache-zero-fs-header", ["data", "cache", "{in}/wfdb_zerofs", "--cache-dir", "{out}", "--no-progress"], "sampling rate '0'"),
    ("cache-dir-is-file", ["data", "cache", "{in}/wfdb_ok", "--cache-dir", "{in}/afile/cache", "--no-progress"], "afile"),
    ("cache-bandpass-reversed", ["data", "cache", "{in}/wfdb_ok", "--cache-dir", "{out}", "--bandpass", "40", "0.5"], "0 <= low < high"),
    ("cache-no-samples", ["data", "cache", "{in}/wfdb_ok", "--cache-dir", "{out}", "--fs", "1", "--seconds", "0.1"], "gives no sample"),
    ("cache-bad-table", ["data", "cache", "{in}/px_fold", "--cache-dir", "{out}", "--limit", "2"], "strat_fold must hold"),
    # data fetch
    ("fetch-missing-source", ["data", "fetch", "ptbxl", "--dest", "{out}", "--source", "{in}/nowhere"], "no SHA256SUMS.txt in the source folder"),
    ("fetch-checksum-mismatch", ["data", "fetch", "ptbxl", "--dest", "{out}", "--source", "{in}/rel_tampered", "--no-progress"], "scp_statements.csv: sha256 mismatch"),
    ("fetch-unsafe-path", ["data", "fetch", "ptbxl", "--dest", "{out}", "--source", "{in}/rel_unsafe"], "refusing path '../evil.txt'"),
    ("fetch-absolute-path", ["data", "fetch", "ptbxl", "--dest", "{out}", "--source", "{in}/rel_absolute"], "refusing path '/etc/passwd'"),
    ("fetch-not-a-checksum-list", ["data", "fetch", "ptbxl", "--dest", "{out}", "--source", "{in}/rel_html"], "not a sha256 checksum list"),
    ("fetch-dest-is-file", ["data", "fetch", "ptbxl", "--dest", "{in}/afile", "--source", "{in}/rel_ok"], "is a file; expected a folder"),
    ("fetch-no-match", ["data", "fetch", "ptbxl", "--dest", "{out}", "--source", "{in}/rel_ok", "--files", "records500/*"], "no file in SHA256SUMS.txt matches ['records500/*']"),
    ("fetch-unreachable", ["data", "fetch", "ptbxl", "--dest", "{out}", "--source", "http://127.0.0.1:9/ptb-xl/"], "could not read the checksum list"),
    # pretrain: configs, data folders, checkpoints
    ("pretrain-config-missing", ["pretrain", "--config", "{in}/nope.json", "--data", "{in}/pdata", "--out", "{out}"], "nope.json does not exist"),
    ("pretrain-config-not-json", ["pretrain", "--config", "{in}/bad.json", "--data", "{in}/pdata", "--out", "{out}"], "bad.json is not valid JSON"),
    ("pretrain-config-list", ["pretrain", "--config", "{in}/list.json", "--data", "{in}/pdata", "--out", "{out}"], "expected a JSON object"),
    ("pretrain-config-unknown", ["pretrain", "--config", "{in}/unknown.json", "--data", "{in}/pdata", "--out", "{out}"], "'hiden_size' -> 'hidden_size'?"),
    ("pretrain-config-type", ["pretrain", "--config", "{in}/type.json", "--data", "{in}/pdata", "--out", "{out}"], "hidden_size='128': expected an integer >= 1"),
    ("pretrain-config-heads", ["pretrain", "--config", "{in}/heads.json", "--data", "{in}/pdata", "--out", "{out}"], "num_heads=0: expected an integer >= 1"),
    ("pretrain-config-lr", ["pretrain", "--config", "{in}/lr.json", "--data", "{in}/pdata", "--out", "{out}"], "PretrainConfig.lr='fast'"),
    ("pretrain-config-preprocess", ["pretrain", "--config", "{in}/prep.json", "--data", "{in}/pdata", "--out", "{out}"], "'normalise' -> 'normalize'?"),
    ("pretrain-config-folds", ["pretrain", "--config", "{in}/folds.json", "--data", "{in}/pdata", "--out", "{out}"], "folds=(11,)"),
    ("pretrain-objective", ["pretrain", "--objective", "jigsaw", "--data", "{in}/pdata", "--out", "{out}"], "objectives=('jigsaw',)"),
    ("pretrain-data-missing", ["pretrain", "--config", "{in}/tiny.json", "--data", "{in}/nowhere", "--out", "{out}"], "is not a folder"),
    ("pretrain-data-bad-meta", ["pretrain", "--config", "{in}/tiny.json", "--data", "{in}/pdata_badmeta", "--out", "{out}"], "meta.json is not valid JSON"),
    ("pretrain-resume-pickle", ["pretrain", "--config", "{in}/tiny.json", "--data", "{in}/pdata", "--out", "{out}", "--steps", "1", "--no-progress"], "pickled checkpoint of an older ecgmeta", "in/run_pickle"),
    ("pretrain-resume-damaged", ["pretrain", "--config", "{in}/tiny.json", "--data", "{in}/pdata", "--out", "{out}", "--steps", "1", "--no-progress"], "state.safetensors is damaged", "in/run_damaged"),
    # probe: encoders, data, options
    ("probe-encoder-missing", ["probe", "--data", "{data}", "--out", "{out}", "--encoder", "{in}/nowhere"], "No encoder checkpoint at"),
    ("probe-encoder-truncated", ["probe", "--data", "{data}", "--out", "{out}", "--encoder", "{in}/enc_truncated"], "enc_truncated/model.safetensors"),
    ("probe-encoder-pickle", ["probe", "--data", "{data}", "--out", "{out}", "--encoder", "{in}/enc_pickle"], "['pytorch_model.bin'], pickle files that ecgmeta never loads"),
    ("probe-encoder-nan", ["probe", "--data", "{data}", "--out", "{out}", "--encoder", "{in}/enc_nan"], "holds NaN/inf weights"),
    ("probe-encoder-json", ["probe", "--data", "{data}", "--out", "{out}", "--encoder", "{in}/enc_json"], "enc_json/config.json is not valid JSON"),
    ("probe-encoder-misspelt-key", ["probe", "--data", "{data}", "--out", "{out}", "--encoder", "{in}/enc_key"], "unknown key(s) ['preprocesss']"),
    ("probe-encoder-type", ["probe", "--data", "{data}", "--out", "{out}", "--encoder", "{in}/enc_type"], "hidden_size='128'"),
    ("probe-encoder-heads", ["probe", "--data", "{data}", "--out", "{out}", "--encoder", "{in}/enc_heads"], "num_heads=0"),
    ("probe-leads", ["probe", "--data", "{data}", "--out", "{out}", "--leads", "I+Q"], "lead subset 'I+Q'"),
    ("probe-fraction-zero", ["probe", "--data", "{data}", "--out", "{out}", "--fractions", "0"], "label fraction 0.0"),
    ("probe-fraction-text", ["probe", "--data", "{data}", "--out", "{out}", "--fractions", "abc"], "--fractions 'abc'"),
    ("probe-max-records", ["probe", "--data", "{data}", "--out", "{out}", "--max-records", "10"], "max_records=10"),
    ("probe-data-missing", ["probe", "--data", "{in}/nowhere", "--out", "{out}"], "is not a folder"),
    ("probe-bad-table", ["probe", "--data", "{in}/px_likelihood", "--out", "{out}"], "non-numeric likelihood"),
    # multimodal
    ("multimodal-teacher-missing", ["multimodal", "pretrain", "--objective", "selfmis", "--teacher", "{in}/nowhere", "--data", "{data}", "--out", "{out}"], "No encoder checkpoint at"),
    ("multimodal-plain-truncated", ["multimodal", "benchmark", "--plain", "{in}/enc_truncated", "--data", "{data}", "--out", "{out}"], "truncated or not safetensors"),
    ("multimodal-data-missing", ["multimodal", "pretrain", "--objective", "tolerant", "--data", "{in}/nowhere", "--out", "{out}"], "is not a folder"),
    ("multimodal-batch-one", ["multimodal", "pretrain", "--objective", "tolerant", "--batch-size", "1", "--data", "{data}", "--out", "{out}"], "batch_size=1"),
    # meta-train, evaluate, demo through the generic error path (their data folder does not exist: nothing heavy runs)
    ("meta-train-config-missing", ["meta-train", "--config", "{in}/nope.json", "--data", "{in}/nowhere", "--out", "{out}"], "nope.json does not exist"),
    ("meta-train-config-not-json", ["meta-train", "--config", "{in}/bad.json", "--data", "{in}/nowhere", "--out", "{out}"], "is not valid JSON"),
    ("meta-train-unknown-field", ["meta-train", "--set", "nonexistent_field=1", "--data", "{in}/nowhere", "--out", "{out}"], "nonexistent_field"),
    ("meta-train-override-syntax", ["meta-train", "--set", "inner_steps", "--data", "{in}/nowhere", "--out", "{out}"], "key=value"),
    ("meta-train-steps-zero", ["meta-train", "--meta-steps", "0", "--data", "{in}/nowhere", "--out", "{out}"], "meta_steps"),
    ("meta-train-data-missing", ["meta-train", "--data", "{in}/nowhere", "--out", "{out}"], "nowhere"),
    ("evaluate-model-missing", ["evaluate", "--model", "{in}/nomodel", "--data", "{data}", "--out", "{out}"], "no saved model in"),
    ("evaluate-methods", ["evaluate", "--model", "{in}/nomodel", "--data", "{data}", "--out", "{out}", "--methods", "magic"], "unknown methods ['magic']"),
    ("evaluate-n-way-text", ["evaluate", "--model", "{in}/nomodel", "--data", "{data}", "--out", "{out}", "--n-way", "two"], "got 'two'"),
    ("evaluate-episodes-zero", ["evaluate", "--model", "{in}/nomodel", "--data", "{data}", "--out", "{out}", "--episodes", "0"], "episodes"),
    ("demo-config-missing", ["demo", "--data", "{data}", "--out", "{out}", "--config", "{in}/nope.json"], "nope.json does not exist"),
    ("demo-config-eval", ["demo", "--data", "{data}", "--out", "{out}", "--config", "{in}/demo_eval.json"], "bad 'eval' section"),
    ("demo-config-not-json", ["demo", "--data", "{data}", "--out", "{out}", "--config", "{in}/bad.json"], "is not valid JSON"),
]

CASES += [
    ("meta-train-inner-lr-text", ["meta-train", "--set", 'meta.inner_lr="fast"', "--data", "{in}/nowhere", "--out", "{out}"], "inner_lr"),
    ("meta-train-type", ["meta-train", "--set", 'k_shot="5"', "--data", "{in}/nowhere", "--out", "{out}"], "k_shot"),
    ("meta-train-split-by", ["meta-train", "--set", 'split_by="attribute"', "--data", "{in}/nowhere", "--out", "{out}"], "split_by"),
    # an earlier run is never destroyed: --no-resume into a folder holding a run is refused (the folder lies outside --out here,
    # so any change to it fails the "nothing changed" check)
    ("meta-train-no-resume-existing", ["meta-train", "--no-resume", "--data", "{data}", "--out", "{in}/old_run"], "already holds a run"),
    ("evaluate-model-bad-json", ["evaluate", "--model", "{in}/model_badjson", "--data", "{data}", "--out", "{out}"], "ecglm_config.json"),
    ("evaluate-split", ["evaluate", "--model", "{in}/nomodel", "--data", "{data}", "--out", "{out}", "--split", "train"], "--split"),
    ("demo-budget-zero", ["demo", "--data", "{in}/nowhere", "--out", "{out}", "--budget-minutes", "0"], "budget"),
    ("demo-split", ["demo", "--data", "{data}", "--out", "{out}", "--split", "meta-test"], "--split"),
]

PARAMS = [pytest.param(c, id=c[0]) for c in CASES]


@pytest.mark.parametrize("case", PARAMS)
def test_bad_input(case, runner, ws):
    name, argv, expect, *rest = case
    out = ws / (rest[0] if rest else f"out/{name}")
    rc, stdout, stderr, changed = run(runner, ws, argv, out)
    text = stdout + stderr
    lines = ERROR_LINE.findall(text)
    assert rc is not None, f"{name}: timed out"
    assert rc != 0, f"{name}: exit status 0\n{text[-2000:]}"
    assert "Traceback" not in text, f"{name}: traceback\n{text[-3000:]}"
    assert len(lines) == 1, f"{name}: expected one error line, got {len(lines)}\n{text[-2000:]}"
    line = next(l for l in text.splitlines() if ERROR_LINE.match(l))
    assert expect in line, f"{name}: {expect!r} not in {line!r}"
    assert rc == 2, f"{name}: exit status {rc}"
    assert changed == [], f"{name}: changed outside --out: {changed[:10]}"



def test_debug_shows_the_traceback(runner, ws):
    "--debug and ECGMETA_DEBUG=1 show the traceback instead of the one line."
    for argv, env in ((["--debug", "data", "info", "{in}/px_fold"], None), (["data", "info", "{in}/px_fold"], {"ECGMETA_DEBUG": "1"})):
        rc, stdout, stderr, changed = run(runner, ws, argv, env=env)
        assert rc != 0 and "Traceback" in stderr and "ECGMetaError" in stderr and "strat_fold" in stderr
        assert ERROR_LINE.search(stderr) is None and changed == []


def test_broken_records_are_listed_not_fatal(runner, ws):
    "`data info` on a folder lists a record with a bad header and still summarises the others."
    folder = ws / "out" / "mixed"
    _wfdb_folder(folder, ids=(1, 2))
    h = folder / "00002_lr.hea"; h.write_text(h.read_text().replace(" 100 1000", " -100 1000", 1))
    rc, stdout, stderr, changed = run(runner, ws, ["data", "info", str(folder)], out=folder)
    assert rc == 0 and "records: 2 (1 broken)" in stdout and "00002_lr: Header" in stdout and "Traceback" not in stderr


def test_damaged_cache_is_rebuilt(runner, ws):
    "A cache whose signals.npy was cut short is rebuilt on the next run, not read through a broken memmap."
    out = ws / "out" / "cache-rebuild"
    argv = ["data", "cache", "{in}/wfdb_ok", "--cache-dir", str(out), "--no-progress"]
    assert run(runner, ws, argv, out)[0] == 0
    sig = next(out.glob("*/signals.npy")); sig.write_bytes(sig.read_bytes()[:-64])
    rc, stdout, stderr, _ = run(runner, ws, argv, out)
    assert rc == 0 and "2 records cached (0 skipped), built" in stdout and "is damaged" in stderr


def test_entry_point(ws):
    "The installed command: a user error is one line on stderr with status 2, --help still works."
    exe = Path(sys.executable).with_name("ecgmeta")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "import sys; from ecgmeta.cli import main; sys.exit(main())"]
    env = {k: v for k, v in os.environ.items() if k != "ECGMETA_DEBUG"}
    r = subprocess.run(cmd + ["data", "info", str(ws / "in" / "px_likelihood")], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and r.stdout == "" and "Traceback" not in r.stderr
    assert r.stderr.startswith("ecgmeta: error: ") and r.stderr.count("\n") == 1 and "non-numeric likelihood" in r.stderr
