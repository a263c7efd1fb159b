"""The documentation site, built by `tools/build_docs.py`, opened in headless Chromium.

Every page must load without console errors, every same-origin link must answer 200 and land on an existing
anchor, and every image must decode. Every notebook's page must show at least one rendered output that is a
result (API documentation from `show_doc` does not count), and every notebook whose visible, executed code
draws a plot must show at least one decoded image among its outputs.

`test_docs_site_in_browser` builds the real site (notebooks run in Jupyter kernels; results are reused from
`.jupyter_cache/` or `$ECGMETA_DOCS_CACHE`, which `make docs` shares) unless `$ECGMETA_DOCS_SITE` points at a site
already built (e.g. by `make docs`). A screenshot of the home page is saved to `$ECGMETA_DOCS_SCREENSHOT` when set.
The tiny-site tests check the builder (nbdev directives, cache, failures) and that the checks above can fail.

Needs Debian's chromium (`make test` installs it; the test fails, not skips, without it).
"""
from __future__ import annotations

import functools
import html
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urldefrag, urljoin

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILDER = ROOT / "tools" / "build_docs.py"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# a call that draws a figure (ecgmeta's plot_* functions, pyplot, Axes and pandas plotting methods)
_re_plot = re.compile(r"\bplot_\w+\(|\bplt\.(?:subplots|figure|plot|imshow|scatter|bar|hist|matshow)\("
                      r"|\.(?:plot|imshow|scatter|bar|barh|hist|matshow|pcolormesh|errorbar|fill_between)\(")


def chromium_path() -> str:
    "The chromium binary, or a failure that says how to install it."
    for cand in (os.environ.get("ECGMETA_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                 shutil.which("chromium-browser")):
        if cand and Path(cand).exists(): return cand
    pytest.fail("Debian's chromium is needed for the docs browser test but was not found at /usr/bin/chromium. "
                "`make test` installs it when run as root; otherwise run `sudo apt-get install -y chromium` "
                "(or set ECGMETA_CHROMIUM to a chromium binary).")


def build_site(out: Path, nbs: Path | None = None, cache: Path | None = None) -> tuple[Path, str]:
    "Run the site builder into `out`; returns the site and the builder's summary line."
    cmd = [sys.executable, str(BUILDER), "--out", str(out), "-q"]
    if nbs is not None: cmd += ["--nbs", str(nbs)]
    if cache is not None: cmd += ["--cache", str(cache)]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, f"tools/build_docs.py failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-6000:]}"
    assert (out / "index.html").exists(), f"no index.html in {out}: {sorted(p.name for p in out.iterdir())}"
    return out, r.stdout.strip().splitlines()[-1]


def expected_pages(nbs: Path) -> dict[str, bool]:
    "Page of each notebook in `nbs` -> whether its visible, executed code draws a plot."
    sys.path.insert(0, str(BUILDER.parent))
    try: from build_docs import find_notebooks, page_name
    finally: sys.path.pop(0)
    from nbdev.config import get_config
    from nbdev.test import nb_test_cells
    flags = str(get_config().get("tst_flags", "")).split()
    res = {}
    for nb in find_notebooks(nbs):
        cells = nb_test_cells(nb, flags)  # what runs: cells flagged slow/cuda and `eval: false` ones are not
        shown = [c for c in cells if not ({"hide", "export", "exporti"} & set(c.directives_))]
        res[page_name(nb.relative_to(nbs).as_posix()) + ".html"] = any(_re_plot.search(c.source) for c in shown)
    return res


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


# results shown by myst-nb: outputs of cells that are not show_doc documentation, with what each holds
_OUTPUTS_JS = """() => {
  const outs = [...document.querySelectorAll('div.cell:not(.tag_nbdev-show-doc) div.cell_output')];
  const shown = el => el.getClientRects().length > 0;
  return {
    outputs: outs.filter(o => shown(o) && (o.innerText.trim() || o.querySelector('img, svg, table'))).length,
    images: outs.flatMap(o => [...o.querySelectorAll('img')]).map(i =>
      [i.getAttribute('src'), i.complete, i.naturalWidth, shown(i) ? i.getBoundingClientRect().width : 0]),
  };
}"""


def crawl(site: Path, base: str, expect: dict[str, bool], shot: Path | None = None) -> dict:
    "Open every page of `site` in headless chromium and check it; `expect` maps notebook pages to 'has a plot'."
    from playwright.sync_api import sync_playwright
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html"))
    problems, links, n_img = [], {}, 0
    for rel in sorted(set(expect) - set(pages)): problems.append(f"{rel}: notebook page missing from the site")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1360, "height": 900}).new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url} {r.failure}"))
            page.on("response", lambda r: errors.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
            for rel in pages:
                errors.clear()
                resp = page.goto(urljoin(base, rel), wait_until="load")
                if resp is None or resp.status != 200: problems.append(f"{rel}: HTTP {resp and resp.status}")
                page.wait_for_load_state("networkidle")
                for src, complete, w in page.eval_on_selector_all(
                        "img", "els => els.map(e => [e.getAttribute('src'), e.complete, e.naturalWidth])"):
                    n_img += 1
                    if not complete or not w: problems.append(f"{rel}: image {src} did not render (naturalWidth={w})")
                if rel in expect:
                    got = page.evaluate(_OUTPUTS_JS)
                    if not got["outputs"]:
                        problems.append(f"{rel}: no rendered output (only code, prose or API docs): the notebook "
                                        "must end an example on a displayed value")
                    if expect[rel] and not any(c and w and vw for _, c, w, vw in got["images"]):
                        problems.append(f"{rel}: the notebook draws a plot but the page shows no rendered image "
                                        f"({len(got['images'])} <img> in outputs)")
                for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"):
                    if href.startswith(base): links.setdefault(href, rel)
                if not page.title(): problems.append(f"{rel}: empty <title>")
                problems.extend(f"{rel}: {e}" for e in errors)
                if rel == "index.html" and shot is not None: page.screenshot(path=str(shot), full_page=False)
            # every same-origin link: 200, and its anchor exists on the target page
            by_page: dict[str, set] = {}
            for href in links:
                u, frag = urldefrag(href)
                by_page.setdefault(u, set()).add(frag)
            for u, frags in sorted(by_page.items()):
                src_page = next(links[h] for h in links if urldefrag(h)[0] == u)  # one page that links here
                resp = page.goto(u, wait_until="load")
                if resp is None or resp.status != 200:
                    problems.append(f"link from {src_page} to {u}: HTTP {resp and resp.status}")
                    continue
                if "html" not in (resp.headers.get("content-type") or ""): continue
                ids = set(page.eval_on_selector_all("[id], a[name]", "els => els.map(e => e.id || e.name)"))
                for f in sorted(frags - {""}):
                    if f not in ids: problems.append(f"link from {links[f'{u}#{f}']} to {u}#{f}: no element with that id")
        finally:
            browser.close()
    return {"pages": pages, "links": len(links), "targets": len(by_page), "images": n_img, "problems": problems}


def _write_nb(path: Path, cells: list[dict]) -> None:
    nb = {"cells": [dict(c, id=f"c{i}") for i, c in enumerate(cells)],
          "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb))


def _md(src): return {"cell_type": "markdown", "metadata": {}, "source": src}
def _code(src): return {"cell_type": "code", "metadata": {}, "source": src, "outputs": [], "execution_count": None}


def test_builder_and_checks_on_a_tiny_site(tmp_path, serve):
    "Tiny notebooks: nbdev directives honoured, outputs and plots rendered, cache reused, and the checks can fail."
    nbs = tmp_path / "nbs"
    _write_nb(nbs / "index.ipynb", [
        _md("# Tiny\n\n> A small site."), _code("#| hide\nsecret = 41"),
        # nbdev links ecgmeta's names to its hosted pages: `read_record` is documented on this site's data page,
        # `PTBXL` is not (no anchor there: unlinked), `ecgmeta.plots.plot_ecg` is on no page here (stays hosted)
        _md("## Links\nSee the [guide](tutorials/01_guide.ipynb#a-section), `read_record`, `PTBXL` and "
            "`ecgmeta.plots.plot_ecg`."),
        _code("secret + 1")])
    _write_nb(nbs / "00_data.ipynb", [
        _md("# Data\n\n> Exported code."), _code("#| default_exp data"),
        _code('#| export\ndef read_record(x:int): # a number\n    "Twice `x`."\n    return 2 * x'),
        _code("read_record(21)"),
        _code("#| slow\nraise RuntimeError('a slow cell ran at docs build')"),
        _code("#| eval: false\nraise RuntimeError('an eval: false cell ran at docs build')"),
        _code("import matplotlib.pyplot as plt\nfig, ax = plt.subplots(figsize=(3, 2))\nax.plot([1, 3, 2]);")])
    _write_nb(nbs / "tutorials" / "01_guide.ipynb", [
        _md("# Guide\n\n> Nested page."), _md("## A section\n\nBack to [home](../index.ipynb)."),
        _code("print('hello from the guide')")])
    # a page whose notebook displays nothing and closes its only figure: both checks must fail on it
    _write_nb(nbs / "02_quiet.ipynb", [
        _md("# Quiet\n\n> Nothing displayed."),
        _code("import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.plot([1, 2])\nplt.close(fig)")])
    cache = tmp_path / "cache"
    t0 = time.time()
    site, summary = build_site(tmp_path / "site", nbs, cache)
    cold = time.time() - t0
    assert "4 notebooks run, 0 from the cache" in summary, summary

    def text(page): return html.unescape(re.sub(r"<[^>]+>", "", (site / page).read_text()))
    home, data = (site / "index.html").read_text(), text("data.html")
    assert "secret = 41" not in text("index.html") and "42" in text("index.html"), "hidden cell shown, or result missing"
    assert 'href="tutorials/guide.html#a-section"' in home and 'href="data.html#read-record"' in home
    assert 'href="https://ecgmeta.github.io/ecgmeta/plots.html#plot_ecg"' in home and "#ptbxl" not in home
    assert "def read_record(\n    x:int, # a number" in data and "Twice x." in data, "show_doc of the export missing"
    assert "return 2 * x" not in data, "the source of an #| export cell is shown"
    # the slow and eval: false cells are shown and were not run (they raise: the build would have failed)
    assert "raise RuntimeError('a slow cell ran at docs build')" in data and "Traceback" not in data
    assert "hello from the guide" in text("tutorials/guide.html")

    expect = expected_pages(nbs)
    assert expect == {"index.html": False, "data.html": True, "quiet.html": True, "tutorials/guide.html": False}
    res = crawl(site, serve(site), expect)
    assert sorted(res["problems"]) == [
        "quiet.html: no rendered output (only code, prose or API docs): the notebook must end an example on a displayed value",
        "quiet.html: the notebook draws a plot but the page shows no rendered image (0 <img> in outputs)"], res["problems"]

    # a rebuild with no change runs nothing; a broken image is caught
    t0 = time.time()
    site, summary = build_site(tmp_path / "site", nbs, cache)
    assert "0 notebooks run, 4 from the cache" in summary, summary
    assert time.time() - t0 < cold, (time.time() - t0, cold)
    for img in (site / "_images").glob("*.png"): img.write_bytes(b"not a png")
    probs = crawl(site, serve(site), {"data.html": True})["problems"]
    assert any(p.startswith("data.html: image") and "did not render" in p for p in probs), probs
    assert "data.html: the notebook draws a plot but the page shows no rendered image (1 <img> in outputs)" in probs


def test_failing_notebook_fails_the_build(tmp_path):
    "A notebook that raises (here in a hidden cell) is rendered up to the error, which its page shows; the build fails."
    nbs = tmp_path / "nbs"
    _write_nb(nbs / "index.ipynb", [_md("# Broken\n\n> Fails halfway."), _code("print('before the error')"),
                                    _code("#| hide\nraise ValueError('boom at docs build')"), _code("print('after the error')")])
    r = subprocess.run([sys.executable, str(BUILDER), "--nbs", str(nbs), "--out", str(tmp_path / "site"), "--cache",
                        str(tmp_path / "cache"), "-q"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "FAILED index.ipynb: ValueError: boom at docs build" in r.stderr, r.stderr
    page = html.unescape(re.sub(r"<[^>]+>", "", (tmp_path / "site" / "index.html").read_text()))
    assert "ValueError: boom at docs build" in page
    assert page.count("before the error") == 2 and page.count("after the error") == 1  # code and output; code only


def test_docs_site_in_browser(tmp_path, serve):
    "The real site: every page loads cleanly and shows results, plots render, every internal link and anchor resolves."
    nbs = ROOT / "nbs"
    expect = expected_pages(nbs)
    pre = os.environ.get("ECGMETA_DOCS_SITE")
    site = Path(pre) if pre else build_site(tmp_path / "site")[0]  # notebooks cached in .jupyter_cache/ (or $ECGMETA_DOCS_CACHE)
    shot = tmp_path / "home.png"
    res = crawl(site, serve(site), expect, shot)
    assert res["problems"] == [], f"{len(res['problems'])} problems:\n" + "\n".join(res["problems"][:60])
    assert len(expect) >= 1 and set(expect) <= set(res["pages"]), (sorted(expect), res["pages"])
    assert res["links"] > len(res["pages"]), res  # the sidebar alone links every page from every page
    assert shot.exists() and shot.stat().st_size > 5000, "home page screenshot missing or blank"
    if dst := os.environ.get("ECGMETA_DOCS_SCREENSHOT"): shutil.copy(shot, dst)
