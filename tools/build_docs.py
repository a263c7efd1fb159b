"""Build the documentation site: every notebook executed (cached), processed by nbdev, rendered by Sphinx.

    python tools/build_docs.py               # -> _docs/index.html
    python tools/build_docs.py --out DIR --nbs DIR --cache DIR --jobs N

1. Find the notebooks as nbdev does (`nbglob`: no `_` or `.` files and folders).
2. Stage each one: nbdev's `add_show_docs` puts a `show_doc` cell after every exported definition, and the
   cells that `nbdev-test` leaves out (flags in `tst_flags` such as `slow` and `cuda`, `#| eval: false`) get
   nbclient's `skip-execution` tag.
3. Execute with jupyter-cache: a staged notebook whose code cells, and the library files they import (directly
   or through other modules of `lib_path`, and its data files), match a cached run gets that run's outputs; the
   others run in a Jupyter kernel in their own folder (`nbs/`, `nbs/tutorials/`), `--jobs` at a time, and each
   successful run is cached (in `.jupyter_cache/`).
4. Apply nbdev's docs processors (`FilterDefaults`, what `nbdev-proc-nbs` applies) to the executed notebook:
   hidden and exported cells removed, `show_doc` cells shown as documentation, names linked, front matter.
   The notebook is not run a second time for `show_doc` (`exec_show_docs` is left out: step 3 ran it).
5. Write the processed notebooks to `_proc/` under nbdev's page names (`00_data.ipynb` -> `data`), with Quarto
   cell options turned into myst-nb tags, links made relative, and a table of contents in the order of
   `nbs/sidebar.yml` (notebooks it does not list go after their numeric neighbour).
6. `sphinx-build` with myst-nb (configuration in `docs/conf.py`) renders `_proc/` into `_docs/`.

Only what changed is redone: step 3 runs only notebooks without a cached result, step 5 rewrites only pages
whose content changed, and Sphinx re-renders only those. A notebook that fails to run is rendered up to its
error, and the build exits non-zero naming it.
"""
from __future__ import annotations

import argparse
import ast
import concurrent.futures as cf
import fnmatch
import hashlib
import json
import logging
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

log = logging.getLogger("build_docs")
ROOT = Path(__file__).resolve().parents[1]
SHOW_DOC_TAG = "nbdev-show-doc"  # tag of the cells whose output is API documentation, not a result
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"}
# first cell of a staged notebook that has show_doc cells: nbdev's `show_doc`, which stops the notebook where it
# cannot render a symbol (so would `nbdev-docs`); here the page gets the plain signature and the build a warning
SHOW_DOC_SETUP = '''#| hide
from nbdev.showdoc import show_doc as _nbdev_show_doc
def show_doc(sym, *args, **kwargs):
    try: return _nbdev_show_doc(sym, *args, **kwargs)
    except Exception as e:
        import inspect
        from IPython.display import Markdown, display
        name = getattr(sym, "__qualname__", repr(sym))
        try: sig = str(inspect.signature(sym))
        except (TypeError, ValueError): sig = "(...)"
        doc = (inspect.getdoc(sym) or "").strip().splitlines()
        md = f"### {name}\\n\\n```python\\n{'class' if inspect.isclass(sym) else 'def'} {name}{sig}\\n```\\n\\n" + (f"*{doc[0]}*" if doc else "")
        display(Markdown(md), metadata={"nbdev-docs-fallback": f"show_doc({name}) failed ({type(e).__name__}: {e})"})
'''
_re_quarto_opt = re.compile(r"^\s*#\|\s*([\w-]+)\s*:\s*(.*?)\s*$")
_re_md_link = re.compile(r"(?<!!)\[([^\[\]]*)\]\(([^)\s]+)\)")  # [text](url), not images
_re_callout = re.compile(r"^(:{3,})\s*\{\.callout-(note|tip|warning|caution|important)[^}]*\}\s*$", re.M)


@dataclass
class Page:
    "One notebook and the page it becomes."
    src: Path  # source notebook
    rel: str  # notebook path relative to the notebook folder (posix)
    doc: str  # Sphinx document name: nbdev's page name without `.html` (`data`, `tutorials/quickstart`)
    staged: object = None  # nbformat notebook to execute
    executed: object = None  # nbformat notebook with outputs
    cached: bool = False  # outputs came from the cache
    seconds: float = 0.0  # execution time (0 when cached)
    error: str = ""  # why execution failed
    warnings: list = field(default_factory=list)  # show_doc cells rendered without nbdev (nbdev-docs would stop)
    title: str = ""


# ---------------------------------------------------------------- discovery and order
def find_notebooks(nbs: Path) -> list[Path]:
    "Notebooks nbdev would document (`nbdev.doclinks.nbglob`), sorted."
    from nbdev.doclinks import nbglob
    return sorted(Path(p) for p in nbglob(nbs))


def page_name(rel: str) -> str:
    "nbdev's page name for notebook `rel`, without `.html` (`00_data.ipynb` -> `data`)."
    from nbdev.config import nbpath2html
    return nbpath2html(PurePosixPath(rel)).with_suffix("").as_posix()


def _sidebar_refs(item, known: list[str]) -> list[str]:
    "Notebooks (relative paths) that one `sidebar.yml` entry names, in order."
    if isinstance(item, list): return [r for x in item for r in _sidebar_refs(x, known)]
    if isinstance(item, dict):
        if "contents" in item: return _sidebar_refs(item["contents"], known)
        item = item.get("href") or item.get("file") or ""
    if not isinstance(item, str) or not item.endswith(".ipynb"): return []
    item = item.lstrip("./")
    return sorted(k for k in known if fnmatch.fnmatch(k, item)) if any(c in item for c in "*?[") else \
        [item] if item in known else []


def toc_sections(nbs: Path, rels: list[str]) -> list[tuple[str, list[str]]]:
    "`(caption, notebooks)` in the order of `nbs/sidebar.yml`; unlisted notebooks follow their numeric neighbour."
    import yaml
    side = nbs / "sidebar.yml"
    contents = []
    if side.exists():
        contents = ((yaml.safe_load(side.read_text()) or {}).get("website", {}).get("sidebar", {}).get("contents")) or []
    if not contents: return [("", sorted(set(rels) - {"index.ipynb"}))]  # no sidebar: by name
    sections: list[tuple[str, list[str]]] = []
    for item in contents:
        caption = item.get("section", "") if isinstance(item, dict) else ""
        refs = [r for r in _sidebar_refs(item, rels) if r != "index.ipynb"]
        if refs: sections.append((caption, refs))
    seen: set[str] = set()
    for _, refs in sections:  # a notebook listed twice stays where it first appears
        refs[:] = [r for r in refs if not (r in seen or seen.add(r))]
    for rel in sorted(set(rels) - seen - {"index.ipynb"}):
        folder = PurePosixPath(rel).parent
        before = [(r, i) for i, (_, refs) in enumerate(sections) for r in refs if PurePosixPath(r).parent == folder and r < rel]
        if before:
            r, i = max(before)
            sections[i][1].insert(sections[i][1].index(r) + 1, rel)
            where = f"after {r}"
        else:
            if not (sections and sections[-1][0] == "More"): sections.append(("More", []))
            sections[-1][1].append(rel)
            where = "under More"
        log.warning("%s is not in %s: listed %s (add it to the sidebar)", rel, side.relative_to(side.parent.parent), where)
    return [(c, refs) for c, refs in sections if refs]


# ---------------------------------------------------------------- staging and execution
class Library:
    "The library's files and which of its modules each one imports: what a notebook's outputs depend on."

    def __init__(self, lib: Path):
        self.pkg, self.files, self.packages = lib.name, {}, set()
        data = hashlib.sha256()  # package data (weights, configs): part of every signature
        for p in sorted(lib.rglob("*")):
            if not p.is_file() or "__pycache__" in p.parts or p.suffix == ".pyc": continue
            rel = p.relative_to(lib)
            if p.suffix != ".py":
                data.update(rel.as_posix().encode() + b"\0" + p.read_bytes() + b"\0"); continue
            mod = ".".join((self.pkg, *rel.with_suffix("").parts))
            if mod.endswith(".__init__"): mod = mod[: -len(".__init__")]; self.packages.add(mod)
            self.files[mod] = p.read_bytes()
        self.data = data.hexdigest()
        self.deps = {m: self.imports(src.decode("utf-8", "replace"), m) for m, src in self.files.items()}

    def imports(self, code: str, current: str | None = None) -> set[str]:
        "The library's modules that `code` imports anywhere (or names in a string, as `importlib` users do)."
        try: tree = ast.parse(code)
        except SyntaxError: return set(self.files)  # cannot tell: all of them
        names = set()
        for n in ast.walk(tree):
            if isinstance(n, ast.Import): names |= {a.name for a in n.names}
            elif isinstance(n, ast.ImportFrom):
                base = n.module or ""
                if n.level and current:  # relative: from the package of `current`
                    pkg = (current if current in self.packages else current.rpartition(".")[0]).split(".")
                    base = ".".join(pkg[: len(pkg) - n.level + 1] + ([base] if base else []))
                names |= {base} | {f"{base}.{a.name}" for a in n.names}
            elif isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.startswith(self.pkg + "."):
                names.add(n.value)
        return {".".join(nm.split(".")[:i]) for nm in names for i in range(1, nm.count(".") + 2)} & set(self.files)

    def signature(self, code_cells: list[str]) -> str:
        "Hash of the library files that code cells use, directly or through other modules (not `_modidx`)."
        used: set[str] = set()
        for src in code_cells:
            code = "\n".join("pass" if l.lstrip().startswith(("%", "!")) else l for l in src.splitlines())
            used |= self.imports(code)
            if re.search(rf"(?<![\w.]){re.escape(self.pkg)}(?![\w.])", code): used |= set(self.files)  # its CLI
        todo, seen = list(used), set()
        while todo:
            m = todo.pop()
            if m not in seen: seen.add(m); todo.extend(self.deps[m])
        h = hashlib.sha256(self.data.encode())
        for m in sorted(seen - {f"{self.pkg}._modidx"}): h.update(m.encode() + b"\0" + self.files[m] + b"\0")
        return h.hexdigest()[:16]


def stage(src: Path, lib: Library, skip_flags: list[str]):
    "The notebook to execute: `show_doc` cells added, cells that `nbdev-test` skips tagged `skip-execution`."
    import nbformat
    from fastcore.nbio import mk_cell, nb2dict, read_nb
    from nbdev.process import NBProcessor
    from nbdev.processors import add_show_docs
    from nbdev.test import nb_test_cells
    runs = {c.get("id") or c.source for c in nb_test_cells(src, skip_flags)}
    nb = read_nb(src)
    for c in nb.cells:
        if c.cell_type == "code" and (c.get("id") or c.source) not in runs:
            c.metadata.setdefault("tags", []).append("skip-execution")
    NBProcessor(nb=nb, procs=[add_show_docs], rm_directives=False).process()
    for c in nb.cells:
        if c.get("has_sd"):
            c.pop("has_sd")
            c.metadata.setdefault("tags", []).append(SHOW_DOC_TAG)
    if any(c.cell_type == "code" and c.source.lstrip().startswith("show_doc") for c in nb.cells):
        nb.cells.insert(0, mk_cell(SHOW_DOC_SETUP))
    # the library's signature is part of what jupyter-cache hashes (code cells only): a hidden comment cell
    sig = lib.signature([c.source for c in nb.cells if c.cell_type == "code"])
    nb.cells.insert(0, mk_cell(f"#| hide\n# docs build: library files this notebook uses {sig}"))
    d = nb2dict(nb)
    for i, c in enumerate(d["cells"]):
        c.pop("idx_", None)
        c.setdefault("id", f"docs-{i}")
    return nbformat.reads(json.dumps(d), as_version=4)


def _execute(nb_json: str, cwd: str, timeout: int | None, threads: int) -> tuple[str, float, str]:
    "Run one notebook in a Jupyter kernel (a worker process): `(executed notebook, seconds, error)`."
    import nbformat
    from jupyter_cache.executors.utils import single_nb_execution
    nb = nbformat.reads(nb_json, as_version=4)
    # kernels side by side share the cores: with torch's default (a thread per core each) they oversubscribe them,
    # which made a 2-core build 2-4x slower than nbdev-test; the kernel inherits this worker's environment
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"): os.environ.setdefault(var, str(threads))
    # tqdm.auto warns in every kernel without ipywidgets; the page shows text progress bars instead
    os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), "ignore:IProgress not found"]))
    res = single_nb_execution(nb, cwd=cwd, timeout=timeout, allow_errors=False,
                              extra_arguments=["--IPKernelApp.log_level=ERROR"])  # no transport warning per kernel
    err = ""
    if res.err is not None:  # the cell that failed and its exception, not nbclient's whole message
        bad = next((c for c in res.nb.cells if any(o.get("output_type") == "error" for o in c.get("outputs", []))), None)
        what = f"{getattr(res.err, 'ename', type(res.err).__name__)}: {getattr(res.err, 'evalue', res.err)}"
        code = [l for l in (bad.source if bad is not None else "").splitlines() if l.strip() and not l.lstrip().startswith("#|")]
        err = what + (f"\n    in the cell starting: {code[0]}" if code else "")
    return nbformat.writes(res.nb), res.time, err


def execute(pages: list[Page], cache_dir: Path, jobs: int, timeout: int | None) -> None:
    "Outputs for every staged page: from jupyter-cache where it has them, else run (and cache on success)."
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn
    cache = get_cache(cache_dir)
    todo = []
    for p in pages:
        try:
            _, p.executed = cache.merge_match_into_notebook(p.staged)
            p.cached = True
        except KeyError:
            todo.append(p)
    log.info("%d notebooks from the cache, %d to run (%d at a time)", len(pages) - len(todo), len(todo), jobs)
    if not todo: return
    took: dict[str, float] = {}  # how long earlier runs of each notebook took: the longest start first
    for r in cache.list_cache_records():
        took[r.uri] = max(took.get(r.uri, 0.0), float((r.data or {}).get("execution_seconds") or 0.0))
    todo.sort(key=lambda p: -took.get(str(p.src), 0.0))
    ctx = multiprocessing.get_context("spawn")
    workers = max(1, min(jobs, len(todo)))
    threads = max(1, (os.cpu_count() or 1) // workers)
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futs = {pool.submit(_execute, nbformat.writes(p.staged), str(p.src.parent), timeout, threads): p for p in todo}
        for fut in cf.as_completed(futs):
            p = futs[fut]
            try: nb_json, p.seconds, p.error = fut.result()
            except Exception as e:  # the kernel died, or the worker did
                nb_json, p.error = nbformat.writes(p.staged), f"{type(e).__name__}: {e}"
            p.executed = nbformat.reads(nb_json, as_version=4)
            if p.error:
                log.error("%s failed after %.0fs:\n%s", p.rel, p.seconds, p.error)
                continue
            log.info("ran %-36s %6.1fs", p.rel, p.seconds)
            # cache the *staged* notebook's hash with the outputs (what merge_match_into_notebook looks up)
            bundle = nbformat.from_dict(p.executed)
            cache.cache_notebook_bundle(CacheBundleIn(bundle, uri=str(p.src), data={"execution_seconds": p.seconds}),
                                        check_validity=False, overwrite=True)


# ---------------------------------------------------------------- nbdev processing and page text
def nbdev_process(p: Page):
    "nbdev's docs processors on the executed notebook (the same as `nbdev-proc-nbs`, without re-running it)."
    from fastcore.nbio import dict2nb
    from nbdev.processors import FilterDefaults, add_show_docs, exec_show_docs
    nb = dict2nb(json.loads(json.dumps(p.executed)))
    nb.path_ = str(p.src)
    for c in nb.cells:
        if SHOW_DOC_TAG in c.get("metadata", {}).get("tags", []): c.has_sd = True  # for nbdev's `mv_exports`

    class Filter(FilterDefaults):
        def base_procs(self): return [f for f in super().base_procs() if f not in (add_show_docs, exec_show_docs)]
    Filter().nb_proc(nb).process()
    return nb


_re_heading = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
_re_fence = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)


def page_anchors(nb) -> set[str]:
    "The ids Sphinx gives the headings of a processed notebook (markdown cells and `show_doc` output)."
    from docutils.nodes import make_id
    texts = []
    for c in nb.cells:
        if c.cell_type == "markdown": texts.append(c.source)
        for o in c.get("outputs", []):
            md = (o.get("data") or {}).get("text/markdown")
            if md: texts.append("".join(md))
    ids = set()
    for t in texts:
        for h in _re_heading.findall(_re_fence.sub("", t)):
            h = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", h)  # a linked heading: its text
            ids.add(make_id(h.replace("`", "").replace("*", "")))
    return ids


@dataclass
class Links:
    "What links can point to: pages by notebook and by page name, nbdev's hosted-doc URL, the ids on each page."
    by_rel: dict
    by_doc: dict
    site_base: str
    anchors: dict = field(default_factory=dict)

    def target(self, url: str, page: Page) -> str | None:
        "`url` as a relative link if it names a page of this site; None for an nbdev link to an id that page lacks."
        from docutils.nodes import make_id
        path, _, frag = url.partition("#")
        doc, generated = None, False
        if self.site_base and url.startswith(self.site_base):
            rest, generated = path[len(self.site_base):].lstrip("/") or "index.html", True
            for suffix in (".html.md", ".html", ".md"):
                if rest.endswith(suffix): rest = rest[: -len(suffix)]; break
            doc = rest if rest in self.by_doc else None
        elif path.endswith(".ipynb") and "://" not in path and not path.startswith("/"):
            rel = os.path.normpath(os.path.join(os.path.dirname(page.rel), path)).replace(os.sep, "/")
            doc = self.by_rel[rel].doc if rel in self.by_rel else None
        if doc is None: return url
        frag = make_id(frag) if frag else ""
        # nbdev links every exported name, also those its pages do not document (methods, `exporti`): unlink those
        if generated and frag and frag not in self.anchors.get(doc, {frag}): return None
        href = os.path.relpath(doc + ".html", os.path.dirname(page.doc) or ".").replace(os.sep, "/")
        return href + (f"#{frag}" if frag else "")

    def fix(self, md: str, page: Page) -> str:
        "Links in markdown `md` of `page` made relative (or dropped, see `target`); Quarto callouts as MyST ones."
        def _sub(m):
            url = self.target(m.group(2), page)
            return m.group(1) if url is None else f"[{m.group(1)}]({url})"
        md = _re_md_link.sub(_sub, md)
        return _re_callout.sub(lambda m: f"{m.group(1)}{{{m.group(2)}}}", md)


def myst_notebook(nb, page: Page, links: Links) -> dict:
    "The processed notebook as myst-nb reads it: front matter as a title, Quarto cell options as tags, links fixed."
    import yaml
    from fastcore.nbio import nb2dict
    d = nb2dict(nb)
    cells = []
    for c in d["cells"]:
        c.pop("idx_", None); c.pop("has_sd", None)
        src = "".join(c.get("source") or [])
        if c["cell_type"] == "raw":
            fm = yaml.safe_load(src.strip().strip("-")) if src.strip().startswith("---") else None
            if isinstance(fm, dict):
                page.title = str(fm.get("title") or "")
                text = f"# {page.title}" if page.title else ""
                if fm.get("description"): text += f"\n\n{{.description}}\n{fm['description']}"
                if text: cells.append({"cell_type": "markdown", "metadata": {}, "source": text})
            continue
        if c["cell_type"] == "markdown":
            c["source"] = links.fix(src, page)
        elif c["cell_type"] == "code":
            lines, opts = src.splitlines(), {}
            while lines and (m := _re_quarto_opt.match(lines[0])):
                opts[m.group(1)] = m.group(2).strip("\"'").lower(); lines.pop(0)
            c["source"] = "\n".join(lines).strip("\n")
            tags = c["metadata"].setdefault("tags", [])
            tags[:] = [t for t in tags if t != "skip-execution"]
            if opts.get("include") == "false": continue
            if opts.get("echo") == "false" or not c["source"]: tags.append("remove-input")
            if opts.get("output") == "false": tags.append("remove-output")
            if opts.get("code-fold") in ("true", "hide"): tags.append("hide-input")
            if c["source"].startswith("show_doc") and SHOW_DOC_TAG not in tags: tags.append(SHOW_DOC_TAG)
            for o in c.get("outputs", []):
                data = o.get("data") or {}
                if "text/markdown" in data:
                    md = "".join(data["text/markdown"])
                    if SHOW_DOC_TAG in tags: md = re.sub(r"^\s*---\s*\n", "", md)  # nbdev's rule: CSS draws it
                    data["text/markdown"] = links.fix(md, page)
            if not c["source"] and not c.get("outputs"): continue
            if not tags: c["metadata"].pop("tags")
        cells.append(c)
    if page.error:  # the build fails; the page says why (the failing cell may be a hidden one)
        msg = ("::::{error}\nThis notebook stopped with an error when the site was built, so this page shows its "
               f"outputs up to there:\n\n```text\n{page.error}\n```\n::::")
        cells.insert(1 if page.title else 0, {"cell_type": "markdown", "metadata": {}, "source": msg})
    for i, c in enumerate(cells): c.setdefault("id", f"docs-{i}")
    d["cells"] = cells
    d["metadata"].pop("jupytext", None)
    return d


def toc_cell(sections: list[tuple[str, list[str]]], pages_by_rel: dict[str, Page]) -> dict:
    "A markdown cell of hidden toctrees (one per sidebar section): Sphinx's navigation, order and prev/next links."
    blocks = []
    for caption, refs in sections:
        lines = ["```{toctree}", ":hidden:"] + ([f":caption: {caption}"] if caption else []) + [""]
        blocks.append("\n".join(lines + [pages_by_rel[r].doc for r in refs] + ["```"]))
    return {"cell_type": "markdown", "id": "docs-toc", "metadata": {}, "source": "\n\n".join(blocks)}


def write_if_changed(path: Path, text: str) -> bool:
    "Write `text` unless `path` already holds it (so Sphinx re-reads only changed pages)."
    if path.exists() and path.read_text(encoding="utf-8") == text: return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


# ---------------------------------------------------------------- build
@dataclass
class Build:
    "What a build did."
    pages: list[Page] = field(default_factory=list)
    failed: list[Page] = field(default_factory=list)
    sphinx_rc: int = 0
    seconds: float = 0.0


def build(nbs: Path, out: Path, proc: Path, cache_dir: Path, jobs: int = 2, timeout: int | None = 600,
          skip_flags: list[str] | None = None) -> Build:
    "Build the site from the notebooks in `nbs` into `out` (sources in `proc`, executed outputs cached in `cache_dir`)."
    import nbformat
    from nbdev.config import get_config
    t0 = time.time()
    cfg = get_config()
    nbs, out, proc, cache_dir = (Path(x).resolve() for x in (nbs, out, proc, cache_dir))
    if skip_flags is None: skip_flags = str(cfg.get("tst_flags", "")).split()
    site_base = (str(cfg.get("doc_host", "")).rstrip("/") + "/" + str(cfg.get("doc_baseurl", "")).strip("/")).rstrip("/") + "/"
    lib = Library(cfg.lib_path)
    res = Build()
    for src in find_notebooks(nbs):
        rel = src.relative_to(nbs).as_posix()
        res.pages.append(Page(src=src, rel=rel, doc=page_name(rel)))
    by_doc: dict[str, Page] = {}
    for p in res.pages:
        if p.doc in by_doc: raise SystemExit(f"{p.rel} and {by_doc[p.doc].rel} both become the page {p.doc}.html: rename one")
        by_doc[p.doc] = p
    by_rel = {p.rel: p for p in res.pages}
    for p in res.pages: p.staged = stage(p.src, lib, skip_flags)
    t1 = time.time()
    execute(res.pages, cache_dir, jobs, timeout)
    t2 = time.time()
    res.failed = [p for p in res.pages if p.error]
    for p in res.pages:
        p.warnings = [o["metadata"]["nbdev-docs-fallback"] for c in p.executed.cells for o in c.get("outputs", [])
                      if "nbdev-docs-fallback" in (o.get("metadata") or {})]

    wanted = set()
    sections = toc_sections(nbs, list(by_rel))
    processed = {p.doc: nbdev_process(p) for p in res.pages}
    links = Links(by_rel, by_doc, site_base, {d: page_anchors(nb) for d, nb in processed.items()})
    for p in res.pages:
        nb = myst_notebook(processed[p.doc], p, links)
        if p.rel == "index.ipynb": nb["cells"].append(toc_cell(sections, by_rel))
        dst = proc / f"{p.doc}.ipynb"
        wanted.add(dst)
        if write_if_changed(dst, nbformat.writes(nbformat.from_dict(nb))): log.info("page %s", p.doc)
    if "index" not in by_doc:  # a site without an index notebook still needs a root page
        dst = proc / "index.md"
        wanted.add(dst)
        write_if_changed(dst, f"# {cfg.get('title', 'Documentation')}\n\n" + toc_cell(sections, by_rel)["source"] + "\n")
    for f in nbs.rglob("*"):  # images that markdown cells refer to
        r = f.relative_to(nbs)
        if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file() and not any(s.startswith(("_", ".")) for s in r.parts):
            wanted.add(proc / r)
            if not (proc / r).exists() or (proc / r).read_bytes() != f.read_bytes():
                (proc / r).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(f, proc / r)
    gone = False
    for f in sorted(proc.rglob("*"), reverse=True):  # pages of notebooks that are gone
        if f.is_file() and f not in wanted and not any(s.startswith(".") for s in f.relative_to(proc).parts):
            f.unlink(); gone = True
        elif f.is_dir() and not any(f.iterdir()): f.rmdir()
    if out.exists() and (gone or not (out / ".buildinfo").exists()):  # Sphinx never deletes a page: start afresh
        shutil.rmtree(out)

    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-c", str(ROOT / "docs"), "-d", str(proc / ".doctrees"),
           str(proc), str(out)]
    t3 = time.time()
    res.sphinx_rc = subprocess.run(cmd, cwd=ROOT).returncode
    res.seconds = time.time() - t0
    log.info("staged in %.0fs, executed in %.0fs, processed in %.0fs, rendered in %.0fs",
             t1 - t0, t2 - t1, t3 - t2, time.time() - t3)
    return res


def main(argv: list[str] | None = None) -> int:
    "Command line entry point."
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--nbs", type=Path, default=None, help="notebook folder (default: nbdev's nbs_path)")
    ap.add_argument("--out", type=Path, default=None, help="site folder (default: nbdev's doc_path, _docs/)")
    ap.add_argument("--proc", type=Path, default=None, help="folder for the processed notebooks (default: _proc/)")
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("ECGMETA_DOCS_CACHE") or ROOT / ".jupyter_cache"),
                    help="jupyter-cache folder (default: $ECGMETA_DOCS_CACHE, else .jupyter_cache/)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="notebooks run at a time (default: CPU count)")
    ap.add_argument("--flags", default="", help="cell flags to run anyway, e.g. 'slow' (default: skip nbdev's tst_flags)")
    ap.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    os.chdir(ROOT)  # nbdev reads pyproject.toml from the working directory
    from nbdev.config import get_config
    cfg = get_config()
    skip = [f for f in str(cfg.get("tst_flags", "")).split() if f not in args.flags.split()]
    nbs = args.nbs or cfg.path("nbs_path")
    out = args.out or cfg.path("doc_path")
    proc = args.proc or (out.resolve().parent / "_proc" if args.out else ROOT / "_proc")
    cell_timeout = int(cfg.get("cell_timeout", 600) or 0) or None
    res = build(nbs, out, proc, args.cache, jobs=args.jobs, timeout=cell_timeout, skip_flags=skip)
    for p in res.pages:
        for w in p.warnings: print(f"WARNING {p.rel}: {w}; the page shows the plain signature (nbdev-docs would stop here)", file=sys.stderr)
    for p in res.failed: print(f"FAILED {p.rel}: {p.error}", file=sys.stderr)
    n_run = sum(not p.cached and not p.error for p in res.pages)
    print(f"docs site written to {Path(out).resolve()}/index.html in {res.seconds:.0f}s: {len(res.pages)} pages, "
          f"{n_run} notebooks run, {sum(p.cached for p in res.pages)} from the cache, {len(res.failed)} failed"
          + (f", sphinx-build exit {res.sphinx_rc}" if res.sphinx_rc else ""))
    return 1 if res.failed or res.sphinx_rc else 0


if __name__ == "__main__":
    sys.exit(main())
