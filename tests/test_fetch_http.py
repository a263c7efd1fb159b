"""`fetch_ptbxl` against a local HTTP server on 127.0.0.1 serving the PTB-XL sample (no internet)."""
import hashlib
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest

from ecgmeta.fetch import ChecksumError, FetchError, UnsafePathError, fetch_ptbxl, parse_sha256sums

DATA = Path(os.environ.get("ECGMETA_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
PTBXL = DATA / "ptbxl"
SUBSET = ["*.csv", "records100/00000/000[0-1]?_lr.*"]  # 3 tables + records 1-19 (.hea + .dat)


class Server:
    """A threaded HTTP server with Range support and fault injection."""

    def __init__(self, root: Path):
        self.root, self.requests = root, []
        self.cut_once: set[str] = set()       # paths whose first GET is cut halfway
        self.overrides: dict[str, bytes] = {}  # path -> served bytes (tampering)
        srv = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def log_message(self, *a): pass
            def do_GET(self):
                rel = unquote(self.path.split("?")[0]).lstrip("/")
                rng = self.headers.get("Range")
                srv.requests.append((rel, rng))
                if rel in srv.overrides: body = srv.overrides[rel]
                else:
                    f = (srv.root / rel).resolve()
                    if not f.is_relative_to(srv.root.resolve()) or not f.is_file():
                        self.send_response(404); self.send_header("Content-Length", "0"); self.end_headers(); return
                    body = f.read_bytes()
                start = 0
                if rng and rng.startswith("bytes="):
                    start = int(rng[6:].split("-")[0])
                    if start >= len(body):
                        self.send_response(416); self.send_header("Content-Length", "0"); self.end_headers(); return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else: self.send_response(200)
                part = body[start:]
                self.send_header("Content-Length", str(len(part)))
                self.end_headers()
                if rel in srv.cut_once:
                    srv.cut_once.discard(rel)
                    self.wfile.write(part[: len(part) // 2]); self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(part)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self): self.thread.start(); return self
    def __exit__(self, *a): self.httpd.shutdown(); self.httpd.server_close()


@pytest.fixture
def server():
    with Server(PTBXL) as s: yield s


def sha(p: Path) -> str: return hashlib.sha256(p.read_bytes()).hexdigest()


def test_fetch_subset_verifies_and_skips_present(server, tmp_path):
    dest = tmp_path / "ptbxl"
    r = fetch_ptbxl(dest, server.url, files=SUBSET, progress=False)
    sums = parse_sha256sums((PTBXL / "SHA256SUMS.txt").read_text())
    assert len(r.fetched) == 3 + 2 * 19 and not r.present  # 3 tables, .hea + .dat of ids 1-19
    for rel in r.fetched: assert sha(dest / rel) == sums[rel], rel
    assert (dest / "SHA256SUMS.txt").read_bytes() == (PTBXL / "SHA256SUMS.txt").read_bytes()
    assert not list(dest.rglob("*.part"))
    n_get = len(server.requests)
    r2 = fetch_ptbxl(dest, server.url, files=SUBSET, progress=False)
    assert sorted(r2.present) == sorted(r.fetched) and not r2.fetched
    assert len(server.requests) == n_get + 1  # only SHA256SUMS.txt fetched again
    # the fetched files make a readable database subset
    from ecgmeta.data import read_record
    assert read_record(dest / "records100" / "00000" / "00001_lr").signal.shape == (12, 1000)


def test_interrupted_download_resumes_with_range(server, tmp_path):
    rel = "ptbxl_database.csv"
    server.cut_once.add(rel)
    dest = tmp_path / "d"
    r = fetch_ptbxl(dest, server.url, files=[rel], progress=False, retries=2)
    assert r.fetched == [rel]
    assert sha(dest / rel) == sha(PTBXL / rel)
    gets = [(p, rg) for p, rg in server.requests if p == rel]
    half = (PTBXL / rel).stat().st_size // 2
    assert gets[0] == (rel, None) and gets[1] == (rel, f"bytes={half}-"), gets


def test_interrupted_run_leaves_part_and_next_run_resumes(server, tmp_path):
    rel = "records100/00000/00001_lr.dat"
    server.cut_once.add(rel)
    dest = tmp_path / "d"
    with pytest.raises(FetchError, match="re-run to resume") as e:
        fetch_ptbxl(dest, server.url, files=[rel], progress=False, retries=0)
    assert rel in str(e.value)
    part = dest / (rel + ".part")
    assert part.exists() and part.stat().st_size == (PTBXL / rel).stat().st_size // 2
    assert not (dest / rel).exists()
    fetch_ptbxl(dest, server.url, files=[rel], progress=False)
    assert sha(dest / rel) == sha(PTBXL / rel) and not part.exists()
    assert server.requests[-1] == (rel, f"bytes={(PTBXL / rel).stat().st_size // 2}-")


def test_tampered_file_raises_and_is_not_used(server, tmp_path):
    rel = "scp_statements.csv"
    server.overrides[rel] = b"tampered" + (PTBXL / rel).read_bytes()[8:]
    dest = tmp_path / "d"
    with pytest.raises(ChecksumError) as e:
        fetch_ptbxl(dest, server.url, files=[rel], progress=False)
    msg = str(e.value)
    assert rel in msg and sha(PTBXL / rel) in msg
    assert hashlib.sha256(server.overrides[rel]).hexdigest() in msg
    assert "re-run" in msg and "official source" in msg
    assert not (dest / rel).exists() and not (dest / (rel + ".part")).exists()


def test_malicious_checksum_list_writes_nothing_outside(server, tmp_path):
    good = (PTBXL / "SHA256SUMS.txt").read_text().splitlines()[:3]
    server.overrides["SHA256SUMS.txt"] = ("\n".join(good + ["0" * 64 + " ../evil"]) + "\n").encode()
    server.overrides["../evil"] = b"pwned"
    dest = tmp_path / "inner" / "dest"
    with pytest.raises(UnsafePathError, match=r"refusing path '\.\./evil'"):
        fetch_ptbxl(dest, server.url, progress=False)
    assert not (tmp_path / "inner" / "evil").exists()
    assert list(tmp_path.rglob("*")) == []  # a refused checksum list writes nothing, not even the destination
    # an absolute path is refused as well
    server.overrides["SHA256SUMS.txt"] = ("0" * 64 + " /tmp/evil\n").encode()
    with pytest.raises(UnsafePathError, match="no absolute path"):
        fetch_ptbxl(dest, server.url, progress=False)


def test_missing_file_and_bad_source(server, tmp_path):
    server.overrides["SHA256SUMS.txt"] = ("0" * 64 + " not/there.dat\n").encode()
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch_ptbxl(tmp_path / "d", server.url, progress=False)
    with pytest.raises(FetchError, match="could not read the checksum list"):
        fetch_ptbxl(tmp_path / "d", server.url + "nowhere/", progress=False)
    server.overrides["SHA256SUMS.txt"] = b"<html>404</html>"
    with pytest.raises(FetchError, match="not a sha256 checksum list"):
        fetch_ptbxl(tmp_path / "d", server.url, progress=False)
