"""The documentation site, built by `tools/build_docs.py`, opened in headless Chromium.

Every page must load without console errors, every same-origin link must answer 200 and land on an
existing anchor, and every image must have decoded. A screenshot of the home page is saved to the test's
`tmp_path` (and to `$ECGMETA_DOCS_SCREENSHOT` when set). `$ECGMETA_DOCS_SITE` points the test at a site
that is already built (e.g. by `make docs`) instead of building one.

Needs Debian's chromium: `apt-get install -y chromium` (the test fails, not skips, without it).
"""
from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import struct
import threading
import zlib
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILDER = ROOT / "tools" / "build_docs.py"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def png_b64(w: int = 40, h: int = 20) -> str:
    "A valid red `w` x `h` PNG, base64 encoded as notebooks store images."
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + b"\xc0\x20\x20" * w for _ in range(h))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return base64.b64encode(png).decode()


def chromium_path() -> str:
    "The chromium binary, or a failure that says how to install it."
    for cand in (os.environ.get("ECGMETA_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                 shutil.which("chromium-browser")):
        if cand and Path(cand).exists(): return cand
    pytest.fail("Debian's chromium is needed for the docs browser test but was not found at /usr/bin/chromium. "
                "Install it with `apt-get install -y chromium` (or set ECGMETA_CHROMIUM to a chromium binary).")


def build_site(out: Path, nbs: Path | None = None, *extra: str) -> Path:
    "Run the site builder into `out` and return it."
    cmd = [sys.executable, str(BUILDER), "--out", str(out), "-q", *extra]
    if nbs is not None: cmd += ["--nbs", str(nbs)]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"tools/build_docs.py failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    assert (out / "index.html").exists(), f"no index.html in {out}: {sorted(p.name for p in out.iterdir())}"
    return out


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass


@pytest.fixture
def serve():
    "Serve a folder on 127.0.0.1 (free port, threaded); yields a function folder -> base URL."
    servers = []
    def _serve(folder: Path) -> str:
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}/"
    yield _serve
    for s in servers: s.shutdown(); s.server_close()


def crawl(site: Path, base: str, shot: Path | None = None) -> dict:
    "Open every page of `site` in headless chromium; returns what was checked and every problem found."
    from playwright.sync_api import sync_playwright
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html"))
    problems, links, n_img = [], {}, 0
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            ctx = browser.new_context(viewport={"width": 1360, "height": 900})
            page = ctx.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url} {r.failure}"))
            page.on("response", lambda r: errors.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
            for rel in pages:
                errors.clear()
                url = urljoin(base, rel)
                resp = page.goto(url, wait_until="load")
                if resp is None or resp.status != 200: problems.append(f"{rel}: HTTP {resp and resp.status}")
                page.wait_for_load_state("networkidle")
                imgs = page.eval_on_selector_all(
                    "img", "els => els.map(e => [e.getAttribute('src'), e.complete, e.naturalWidth])")
                for src, complete, w in imgs:
                    n_img += 1
                    if not complete or not w: problems.append(f"{rel}: image {src} did not render (naturalWidth={w})")
                for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"):
                    if href.startswith(base): links.setdefault(href, rel)
                if not page.title(): problems.append(f"{rel}: empty <title>")
                problems.extend(f"{rel}: {e}" for e in errors)
                if rel == "index.html" and shot is not None:
                    page.screenshot(path=str(shot), full_page=False)
            # every same-origin link: 200, and its anchor exists on the target page
            by_page: dict[str, set] = {}
            for href in links: 
                u, frag = urldefrag(href)
                by_page.setdefault(u, set()).add(frag)
            for u, frags in sorted(by_page.items()):
                src_page = links.get(u) or next(links[h] for h in links if urldefrag(h)[0] == u)
                resp = page.goto(u, wait_until="load")
                if resp is None or resp.status != 200:
                    problems.append(f"link from {src_page} to {u}: HTTP {resp and resp.status}")
                    continue
                if "html" not in (resp.headers.get("content-type") or ""): continue
                ids = set(page.eval_on_selector_all("[id], a[name]", "els => els.map(e => e.id || e.name)"))
                for f in sorted(frags - {""}):
                    if f not in ids: problems.append(f"link from {src_page} to {u}#{f}: no element with that id")
        finally:
            browser.close()
    return {"pages": pages, "links": len(links), "targets": len(by_page), "images": n_img, "problems": problems}


def _write_nb(path: Path, cells: list[dict]) -> None:
    nb = {"cells": cells, "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb))


def _md(src): return {"cell_type": "markdown", "metadata": {}, "source": src}
def _code(src, outputs=()): 
    return {"cell_type": "code", "metadata": {}, "source": src, "outputs": list(outputs), "execution_count": None}


def test_renderer_features_in_browser(tmp_path, serve):
    "A tiny notebook set with a saved PNG, a table, a callout, links and a nested page renders and links correctly."
    nbs = tmp_path / "nbs"
    _write_nb(nbs / "index.ipynb", [
        _md("# Tiny\n\n> A two-page site."), _md("## Links\nSee the [guide](tutorials/01_guide.ipynb#a-section) and `ecgmeta.cli.main`.\n- a list right after a line"),
        _code("1+1", [{"output_type": "execute_result", "execution_count": 1, "metadata": {},
                       "data": {"text/plain": "2", "image/png": png_b64()}}]),
        _code("#| hide\nsecret = 42"),
        _md("::: {.callout-note}\nA note.\n:::\n\n| a | b |\n|---|---|\n| 1 | 2 |"),
    ])
    _write_nb(nbs / "tutorials" / "01_guide.ipynb", [
        _md("# Guide\n\n> Nested page."), _md("## A section\n\nBack to [home](../index.ipynb)."),
        _code("print('hello')", [{"output_type": "stream", "name": "stdout", "text": "hello\n"}])])
    site = build_site(tmp_path / "site", nbs)
    home = (site / "index.html").read_text()
    assert "secret = 42" not in home, "a #| hide cell leaked into the page"
    assert 'href="tutorials/guide.html#a-section"' in home
    assert 'href="https://ecgmeta.github.io/ecgmeta/cli.html#main"' in home  # not in this site: hosted docs
    assert 'class="callout' in home and "<table>" in home
    assert "<li>a list right after a line</li>" in home
    guide = (site / "tutorials" / "guide.html").read_text()
    assert 'href="../index.html"' in guide and "hello" in guide
    res = crawl(site, serve(site), tmp_path / "tiny.png")
    assert res["problems"] == [], "\n".join(res["problems"])
    assert res["images"] >= 3, res  # logo on both pages + the saved PNG output
    assert {"index.html", "tutorials/guide.html"} <= set(res["pages"])


def test_docs_site_in_browser(tmp_path, serve):
    "The real site: builds, every page loads cleanly, every internal link and anchor resolves, images render."
    nbs = ROOT / "nbs"
    n_nbs = len([p for p in nbs.rglob("*.ipynb") if not any(q.startswith(("_", ".")) for q in p.relative_to(nbs).parts)])
    pre = os.environ.get("ECGMETA_DOCS_SITE")
    # the ECG plots notebook is executed so that real figures are on the site and checked in the browser
    plots = ["--execute", "01_plots.ipynb"] if (nbs / "01_plots.ipynb").exists() else []
    site = Path(pre) if pre else build_site(tmp_path / "site", None, *plots)
    shot = tmp_path / "home.png"
    res = crawl(site, serve(site), shot)
    assert res["problems"] == [], f"{len(res['problems'])} problems:\n" + "\n".join(res["problems"][:60])
    assert len(res["pages"]) >= max(n_nbs, 1), f"{n_nbs} notebooks but only pages {res['pages']}"
    assert res["links"] > len(res["pages"]), res  # the sidebar alone links every page from every page
    if plots and not pre:
        assert list((site / "plots_files").glob("*.png")), "executing 01_plots produced no figures on plots.html"
    assert shot.exists() and shot.stat().st_size > 5000, "home page screenshot missing or blank"
    if dst := os.environ.get("ECGMETA_DOCS_SCREENSHOT"): shutil.copy(shot, dst)
