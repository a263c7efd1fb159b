"""Build the ecgmeta documentation site without Quarto.

Notebooks in `nbs/` go through nbdev's own docs processors (`nbdev.processors.FilterDefaults`, what
`nbdev-proc-nbs` applies: show_doc cells added and run, `#| hide` and export cells removed, backticked
names linked), then each processed notebook is rendered to static HTML with Python-Markdown and
Pygments, with a sidebar from `nbs/sidebar.yml`, a page table of contents and a small stylesheet.

    python tools/build_docs.py                      # -> _docs/, notebooks rendered with their saved outputs
    python tools/build_docs.py --out DIR            # somewhere else
    python tools/build_docs.py --execute            # run every notebook first (cells flagged slow/cuda skipped)
    python tools/build_docs.py --execute 'tutorials/*' --execute '01_plots*'   # run only these

Notebooks are committed without outputs (they are written as scripts and checked by `nbdev-test`),
so a plain build shows code, prose and API docs; `--execute` adds rendered outputs such as ECG plots.
The `nbdev-proc-nbs` command itself is not used: it first tries to download and install Quarto.
"""
from __future__ import annotations

import argparse
import base64
import fnmatch
import html
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urldefrag, urlsplit

import markdown
import yaml
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

log = logging.getLogger("build_docs")
ROOT = Path(__file__).resolve().parents[1]

_re_ansi = re.compile(r"\x1B(?:[@-Z\\-_]|\[[0-?]*[ -/]*[@-~])")
_re_directive = re.compile(r"^\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$")
_re_heading = re.compile(r"<h([1-4])>(.*?)</h\1>", re.S)
_re_tag = re.compile(r"<[^>]+>")
_re_fdiv = re.compile(r"^(:{3,})\s*(\{[^}]*\}|[\w-]+)?\s*$")
_re_src_link = re.compile(r"\[source\]\((\S+?)\)\{[^}]*\}")
_re_attrs = re.compile(r"(?:\.([\w-]+))|(?:#([\w-]+))|(?:([\w-]+)=(\"[^\"]*\"|'[^']*'|\S+))")
_re_list_start = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+\S")


@dataclass(frozen=True)
class BuildConfig:
    "What to build and where."
    nbs: Path  # folder of source notebooks (the nbdev `nbs_path`)
    out: Path  # output folder of the static site
    execute: tuple[str, ...] = ()  # globs (relative to `nbs`) of notebooks to execute before rendering
    skip_flags: tuple[str, ...] = ("slow", "cuda")  # cells with these directives are not executed
    cell_timeout: int = 600  # seconds per executed cell


@dataclass
class Page:
    "One notebook and where its page goes."
    src: Path  # source notebook
    rel: Path  # notebook path relative to `nbs`
    out_rel: str  # html path relative to the site root (posix)
    title: str = ""
    description: str = ""
    body: str = ""
    toc: list = field(default_factory=list)
    error: str = ""
    warnings: list = field(default_factory=list)


# ---------------------------------------------------------------- small helpers
def slugify(text: str) -> str:
    "Heading id as pandoc (so Quarto and nbdev's doc links) makes it."
    t = html.unescape(_re_tag.sub("", text)).strip().lower()
    t = re.sub(r"[^\w\s.\-]", "", t)
    t = re.sub(r"\s+", "-", t)
    t = re.sub(r"^[^a-z]+", "", t)
    return t or "section"


def relurl(target: str, frm: str) -> str:
    "URL of site path `target` relative to the page at site path `frm` (both posix, from the root)."
    return os.path.relpath(target, os.path.dirname(frm) or ".").replace(os.sep, "/")


def out_name(rel: Path) -> str:
    "Site path of notebook `rel`: numeric prefix dropped, lower case (nbdev's `nbpath2html`)."
    name = re.sub(r"^\d+[a-zA-Z0-9]*_", "", rel.name.lower())
    return (rel.parent / name).with_suffix(".html").as_posix()


def src_text(x) -> str:
    return "".join(x) if isinstance(x, list) else (x or "")


def code_html(src: str, lang: str = "python") -> str:
    try: lexer = get_lexer_by_name(lang or "python")
    except ClassNotFound: lexer = get_lexer_by_name("text")
    return highlight(src, lexer, HtmlFormatter(cssclass="highlight", wrapcode=True))


def split_directives(src: str) -> tuple[dict, str]:
    "Quarto/nbdev `#|` directives at the top of a code cell, and the code without them."
    d, lines = {}, src.splitlines()
    i = 0
    while i < len(lines) and (m := _re_directive.match(lines[i])):
        d[m.group(1)] = m.group(2).strip("\"'")
        i += 1
    return d, "\n".join(lines[i:]).strip("\n")


# ---------------------------------------------------------------- markdown
def _div_open(attrs: str) -> str:
    classes, extra = [], {}
    attrs = (attrs or "").strip("{} ")
    for m in _re_attrs.finditer(attrs):
        if m.group(1): classes.append(m.group(1))
        elif m.group(3): extra[m.group(3)] = m.group(4).strip("\"'")
    title = ""
    kind = next((c for c in classes if c.startswith("callout")), None)
    if kind:
        classes.append("callout")
        label = extra.get("title") or kind.replace("callout-", "").capitalize()
        title = f'<p class="callout-title">{html.escape(label)}</p>\n\n'
    return f'\n\n<div class="{html.escape(" ".join(classes))}" markdown="1">\n\n{title}'


def prep_markdown(md: str) -> str:
    "Quarto-flavoured bits Python-Markdown does not know: fenced divs, link attributes, tight lists."
    out, in_fence, depth, prev = [], False, 0, ""
    for line in md.splitlines():
        if line.lstrip().startswith(("```", "~~~")): in_fence = not in_fence
        if not in_fence:
            if m := _re_fdiv.match(line):
                if m.group(2) is None and depth > 0:
                    out.append("\n\n</div>\n\n"); depth -= 1
                else:
                    out.append(_div_open(m.group(2) or "")); depth += 1
                prev = ""
                continue
            line = _re_src_link.sub(r'<a class="source-link" href="\1">source</a>', line)
            line = re.sub(r"(\]\([^)\s]+\))\{[^}]*\}", r"\1", line)
            if _re_list_start.match(line) and prev.strip() and not _re_list_start.match(prev) \
               and not prev.startswith((" ", "\t")):
                out.append("")
        out.append(line)
        prev = line
    out.extend(["\n\n</div>\n\n"] * depth)
    return "\n".join(out)


def md_to_html(md: str) -> str:
    return markdown.markdown(
        prep_markdown(md),
        extensions=["tables", "fenced_code", "codehilite", "attr_list", "md_in_html", "sane_lists", "def_list"],
        extension_configs={"codehilite": {"css_class": "highlight", "guess_lang": False}},
        output_format="html")


# ---------------------------------------------------------------- notebook -> html
class Renderer:
    "Render one processed notebook into the body of a page."

    def __init__(self, page: Page, cfg: BuildConfig, site_base: str, pages_by_src: dict[str, str],
                 mod_pages: dict[str, str] | None = None):
        self.page, self.cfg, self.site_base, self.pages_by_src = page, cfg, site_base, pages_by_src
        self.mod_pages = mod_pages or {}
        self.n_img = 0
        self.out_rels = set(pages_by_src.values()) | {"index.html"}
        self.files_dir = Path(page.out_rel).with_suffix("").as_posix() + "_files"

    # links ---------------------------------------------------------------
    def fix_links(self, body: str) -> str:
        "Make nbdev's absolute doc links and `.ipynb` links relative links to the built pages."
        def _href(m):
            attr, url = m.group(1), html.unescape(m.group(2))
            if self.site_base and url.startswith(self.site_base):
                path, frag = urldefrag(url[len(self.site_base):].lstrip("/") or "index.html")
                if path.endswith(".md"): path = path[:-3] + ".html"
                if path in self.out_rels:  # pages this build does not have stay links to the hosted docs
                    url = relurl(path, self.page.out_rel) + (f"#{frag}" if frag else "")
                    return f'data-doclink="{html.escape(path)}#{html.escape(frag)}" {attr}="{html.escape(url, quote=True)}"'
            elif not urlsplit(url).scheme and not url.startswith(("#", "/")):
                path, frag = urldefrag(url)
                if path.endswith(".ipynb"):
                    tgt = (Path(self.page.rel).parent / path).as_posix()
                    tgt = os.path.normpath(tgt).replace(os.sep, "/")
                    new = self.pages_by_src.get(tgt, out_name(Path(tgt)))
                    url = relurl(new, self.page.out_rel) + (f"#{frag}" if frag else "")
            return f'{attr}="{html.escape(url, quote=True)}"'
        return re.sub(r'(href)="([^"]*)"', _href, body)

    # outputs -------------------------------------------------------------
    def save_image(self, data: str, ext: str) -> str:
        self.n_img += 1
        rel = f"{self.files_dir}/figure-{self.n_img}.{ext}"
        dst = self.cfg.out / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(base64.b64decode(src_text(data)))
        return relurl(rel, self.page.out_rel)

    def output(self, o: dict, asis: bool) -> str:
        ot = o.get("output_type")
        if ot == "stream":
            text = _re_ansi.sub("", src_text(o.get("text")))
            text = "\n".join(l.rstrip("\r").rsplit("\r", 1)[-1] for l in text.split("\n"))  # progress bars: last state
            if not text.strip(): return ""
            return f'<pre class="output-{o.get("name", "stdout")}">{html.escape(text)}</pre>'
        if ot == "error":
            tb = _re_ansi.sub("", "\n".join(o.get("traceback") or [f'{o.get("ename")}: {o.get("evalue")}']))
            return f'<pre class="output-error">{html.escape(tb)}</pre>'
        data = o.get("data") or {}
        if "image/png" in data or "image/jpeg" in data:
            ext, key = ("png", "image/png") if "image/png" in data else ("jpg", "image/jpeg")
            alt = html.escape(src_text(data.get("text/plain", "figure")))[:200]
            return f'<figure class="output-image"><img src="{self.save_image(data[key], ext)}" alt="{alt}"></figure>'
        if "image/svg+xml" in data: return f'<div class="output-svg">{src_text(data["image/svg+xml"])}</div>'
        if "text/html" in data: return f'<div class="output-html">{src_text(data["text/html"])}</div>'
        if "text/markdown" in data:
            cls = "output-asis" if asis else "output-markdown"
            return f'<div class="{cls}">{md_to_html(src_text(data["text/markdown"]))}</div>'
        if "text/plain" in data:
            return f'<pre class="output-text">{html.escape(_re_ansi.sub("", src_text(data["text/plain"])))}</pre>'
        return ""

    # cells ---------------------------------------------------------------
    def markdown_cell(self, cell: dict) -> str:
        src = src_text(cell.get("source"))
        if "<!-- WARNING: THIS FILE WAS AUTOGENERATED" in src and len(src) < 80: return ""
        for name, blobs in (cell.get("attachments") or {}).items():
            mime, data = next(iter(blobs.items()))
            src = src.replace(f"attachment:{name}", f"data:{mime};base64,{src_text(data).strip()}")
        return f'<div class="cell markdown">{md_to_html(src)}</div>'

    def code_cell(self, cell: dict) -> str:
        dirs, src = split_directives(src_text(cell.get("source")))
        if dirs.get("include") == "false": return ""
        parts = []
        if src and dirs.get("echo") != "false":
            code = code_html(src, cell.get("metadata", {}).get("language", "python"))
            if "code-fold" in dirs:
                opn = " open" if dirs["code-fold"] == "show" else ""
                summ = html.escape(dirs.get("code-summary", "Code"))
                code = f"<details class=\"code-fold\"{opn}><summary>{summ}</summary>{code}</details>"
            parts.append(f'<div class="cell-input">{code}</div>')
        if dirs.get("output") != "false":
            outs = [self.output(o, dirs.get("output") == "asis") for o in cell.get("outputs") or []]
            outs = [o for o in outs if o]
            if outs: parts.append('<div class="cell-output">' + "\n".join(outs) + "</div>")
        if not parts: return ""
        cls = "cell code showdoc" if dirs.get("output") == "asis" and dirs.get("echo") == "false" else "cell code"
        return f'<div class="{cls}">' + "\n".join(parts) + "</div>"

    def render(self, nb: dict) -> None:
        fm, chunks = {}, []
        for cell in nb.get("cells", []):
            if "source" not in cell or cell.get("source") is None: continue
            ct = cell.get("cell_type")
            if ct == "raw":
                s = src_text(cell["source"]).strip()
                if s.startswith("---"):
                    try: fm.update(yaml.safe_load(s.strip("-\n")) or {})
                    except yaml.YAMLError as e: log.warning("%s: bad front matter (%s)", self.page.rel, e)
                continue
            if ct == "markdown": chunks.append(self.markdown_cell(cell))
            elif ct == "code": chunks.append(self.code_cell(cell))
        body = "\n".join(c for c in chunks if c)
        body, toc = add_heading_ids(body)
        self.page.title = str(fm.get("title") or self.page.title or Path(self.page.rel).stem)
        self.page.description = str(fm.get("description") or "")
        self.page.body, self.page.toc = self.link_modules(self.fix_links(body)), toc

    def link_modules(self, body: str) -> str:
        "Link `ecgmeta.x` module names (which nbdev leaves alone) to the page of the notebook exporting them."
        def _sub(m):
            tgt = self.mod_pages.get(m.group(1))
            if not tgt or tgt == self.page.out_rel: return m.group(0)
            return f'<a class="modlink" href="{relurl(tgt, self.page.out_rel)}">{m.group(0)}</a>'
        return re.sub(r'(?<!">)<code>([\w.]+)</code>(?!</a>)', _sub, body)


def add_heading_ids(body: str) -> tuple[str, list]:
    "Give every h1-h4 a unique pandoc-style id and collect the h2/h3 ones as a table of contents."
    seen, toc = {}, []
    def _sub(m):
        lvl, inner = int(m.group(1)), m.group(2)
        base = slugify(inner)
        n = seen.get(base, 0); seen[base] = n + 1
        hid = base if n == 0 else f"{base}-{n}"
        if lvl in (2, 3): toc.append((lvl, hid, _re_tag.sub("", inner)))
        return f'<h{lvl} id="{hid}" class="anchored">{inner}<a class="anchor" href="#{hid}" aria-label="link to this section">#</a></h{lvl}>'
    return _re_heading.sub(_sub, body), toc


_re_doclink = re.compile(r'<a data-doclink="([^"#]*)#([^"]*)" href="[^"]*">(.*?)</a>', re.S)


def unlink_dead_doclinks(pages: dict[str, Page]) -> None:
    "nbdev links private names too; where the target page has no such anchor, keep the name and drop the link."
    ids = {p.out_rel: set(re.findall(r'\sid="([^"]+)"', p.body)) for p in pages.values()}
    def _sub(m):
        path, frag, inner = html.unescape(m.group(1)), html.unescape(m.group(2)), m.group(3)
        if frag and frag not in ids.get(path, set()): return inner
        return m.group(0).replace(f'data-doclink="{m.group(1)}#{m.group(2)}" ', 'class="doclink" ', 1)
    for p in pages.values(): p.body = _re_doclink.sub(_sub, p.body)


# ---------------------------------------------------------------- navigation
def _expand(item, nbs: Path) -> list:
    "Sidebar entries as ('page', rel) / ('section', title, [entries]) tuples, globs expanded."
    if isinstance(item, str):
        if item == "auto": item = "*"
        if any(ch in item for ch in "*?["):
            return [("page", p.relative_to(nbs).as_posix()) for p in sorted(nbs.glob(item)) if p.suffix == ".ipynb"]
        return [("page", item)]
    if isinstance(item, dict):
        if "auto" in item: return [e for it in _listify(item["auto"]) for e in _expand(it, nbs)]
        if "section" in item:
            kids = [e for it in _listify(item.get("contents")) for e in _expand(it, nbs)]
            if item.get("href"): kids.insert(0, ("page", item["href"]))
            return [("section", str(item["section"]), kids)]
        if "href" in item: return [("page", item["href"], item.get("text"))]
    return []


def _listify(x): return [] if x is None else x if isinstance(x, list) else [x]


def read_sidebar(nbs: Path, rels: list[str]) -> list:
    "Navigation from `sidebar.yml` (Quarto's format), with any notebook it misses added at the end."
    entries = []
    sb = nbs / "sidebar.yml"
    if sb.exists():
        cfg = yaml.safe_load(sb.read_text()) or {}
        side = (cfg.get("website") or {}).get("sidebar") or {}
        if isinstance(side, list): side = side[0] if side else {}
        for it in _listify(side.get("contents")): entries.extend(_expand(it, nbs))
    listed = set()
    def _walk(es):
        for e in es:
            if e[0] == "page": listed.add(e[1])
            else: _walk(e[2])
    _walk(entries)
    missing = [r for r in rels if r not in listed]
    if missing:
        if sb.exists(): log.info("not in sidebar.yml, listed under 'More': %s", ", ".join(missing))
        top = [("page", r) for r in missing if "/" not in r]
        by_dir: dict[str, list] = {}
        for r in missing:
            if "/" in r: by_dir.setdefault(r.split("/")[0], []).append(("page", r))
        entries.extend(top if not sb.exists() else ([("section", "More", top)] if top else []))
        entries.extend(("section", d.replace("_", " ").capitalize(), es) for d, es in by_dir.items())
    return entries


def nav_html(entries: list, pages: dict[str, Page], cur: Page) -> str:
    def _items(es):
        out = []
        for e in es:
            if e[0] == "section":
                inner = _items(e[2])
                if inner: out.append(f'<li class="nav-section"><span>{html.escape(e[1])}</span><ul>{inner}</ul></li>')
                continue
            rel = e[1]
            if rel.startswith(("http://", "https://")):
                out.append(f'<li><a href="{html.escape(rel)}">{html.escape(e[2] if len(e) > 2 and e[2] else rel)}</a></li>')
                continue
            p = pages.get(rel)
            if p is None: continue
            text = (e[2] if len(e) > 2 and e[2] else None) or p.title
            act = ' class="active" aria-current="page"' if p is cur else ""
            out.append(f'<li><a{act} href="{relurl(p.out_rel, cur.out_rel)}">{html.escape(text)}</a></li>')
        return "".join(out)
    return f'<ul class="nav">{_items(entries)}</ul>'


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} – {site}</title>
<meta name="description" content="{description_attr}">
<link rel="icon" href="{root}favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="{root}site.css">
<link rel="stylesheet" href="{root}pygments.css">
<link rel="stylesheet" href="{root}styles.css">
</head>
<body>
<header class="navbar">
  <a class="brand" href="{root}index.html"><img src="{root}logo.svg" alt="" width="28" height="28">{site}</a>
  <nav class="navbar-right"><a href="{repo}">GitHub</a></nav>
</header>
<div class="layout">
<aside class="sidebar" aria-label="Site navigation">{nav}</aside>
<main class="content" id="content">
<header class="page-header"><h1 class="title">{title}</h1>{description}</header>
{body}
<footer class="page-footer">{prev_next}</footer>
</main>
<aside class="toc" aria-label="On this page">{toc}</aside>
</div>
</body>
</html>
"""

FAVICON = """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32" width="32" height="32">
<rect width="32" height="32" rx="6" fill="#1f4e79"/>
<polyline points="2,18 9,18 11,14 13,18 15,18 17,5 19,27 21,18 24,18 26,15 28,18 30,18"
 fill="none" stroke="#fff" stroke-width="2" stroke-linejoin="round" stroke-linecap="round"/>
</svg>
"""

SITE_CSS = """
:root { --fg:#1d2430; --muted:#5b6677; --line:#e3e7ee; --accent:#1f4e79; --bg-code:#f6f8fa; --nav-w:250px; --toc-w:210px; }
* { box-sizing: border-box; }
html { scroll-padding-top: 64px; }
body { margin:0; font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--fg); line-height: 1.6; font-size: 16px; background: #fff; }
a { color: var(--accent); text-decoration: none; } a:hover { text-decoration: underline; }
.navbar { position: sticky; top: 0; z-index: 10; display:flex; align-items:center; justify-content:space-between;
          height: 52px; padding: 0 20px; background: var(--accent); color:#fff; }
.navbar a { color:#fff; } .brand { font-weight: 600; font-size: 1.15rem; display:flex; align-items:center; gap:10px; }
.layout { display:grid; grid-template-columns: var(--nav-w) minmax(0,1fr) var(--toc-w); max-width: 1400px; margin: 0 auto; }
.sidebar, .toc { position: sticky; top: 52px; align-self: start; max-height: calc(100vh - 52px); overflow-y: auto; padding: 22px 14px; font-size: .92rem; }
.sidebar { border-right: 1px solid var(--line); }
.nav, .nav ul { list-style: none; margin: 0; padding: 0; }
.nav li a { display:block; padding: 3px 10px; border-radius: 4px; color: var(--fg); }
.nav li a:hover { background: #eef2f7; text-decoration:none; }
.nav li a.active { background: #e1ebf5; color: var(--accent); font-weight: 600; }
.nav-section > span { display:block; margin: 14px 0 4px; padding: 0 10px; font-size: .78rem; font-weight: 700;
                      text-transform: uppercase; letter-spacing: .05em; color: var(--muted); }
.content { padding: 26px 40px 60px; min-width: 0; }
.page-header { border-bottom: 1px solid var(--line); margin-bottom: 18px; padding-bottom: 8px; }
.title { margin: 0 0 6px; font-size: 2.1rem; line-height: 1.2; }
.description { color: var(--muted); font-size: 1.08rem; margin: 0 0 8px; }
h2 { margin-top: 2rem; border-bottom: 1px solid var(--line); padding-bottom: 4px; } h3 { margin-top: 1.6rem; }
.anchor { margin-left: .4em; color: #b8c2d0; font-weight: 400; visibility: hidden; }
h1:hover .anchor, h2:hover .anchor, h3:hover .anchor, h4:hover .anchor { visibility: visible; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .9em; background: var(--bg-code);
       padding: .1em .3em; border-radius: 3px; }
pre { background: var(--bg-code); padding: 10px 14px; border-radius: 6px; overflow-x: auto; font-size: .86rem; line-height: 1.45; }
pre code { background: none; padding: 0; font-size: inherit; }
a code { color: var(--accent); }
.highlight { margin: 0; } .highlight pre { margin: .4rem 0; border: 1px solid var(--line); }
.cell { margin: .8rem 0; }
.cell-output pre { background: #fff; border: 1px solid var(--line); border-left: 3px solid #c9d3e0; }
.cell-output pre.output-stderr { border-left-color: #e0b252; background: #fffaf0; }
.cell-output pre.output-error { border-left-color: #c0392b; background: #fff5f5; }
.output-image img { max-width: 100%; height: auto; }
figure { margin: .6rem 0; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .9rem; display: block; overflow-x: auto; }
th, td { border: 1px solid var(--line); padding: 4px 10px; text-align: left; vertical-align: top; }
thead th { background: #f2f5f9; }
table[border] { border: 1px solid var(--line); } .output-html table { font-variant-numeric: tabular-nums; }
.showdoc { margin-top: 1.6rem; }
.showdoc hr { border: 0; border-top: 2px solid var(--line); margin: 1.2rem 0 .4rem; }
.source-link { float: right; font-size: .8rem; }
details.code-fold > summary { cursor: pointer; color: var(--muted); font-size: .88rem; }
.callout { border-left: 4px solid #5b9bd5; background: #f4f8fc; padding: 6px 14px; margin: 1rem 0; border-radius: 4px; }
.callout-warning, .callout-caution { border-left-color: #e0a030; background: #fffaf0; }
.callout-important { border-left-color: #c0392b; background: #fff5f5; }
.callout-tip { border-left-color: #3c9a5f; background: #f3faf5; }
.callout-title { font-weight: 600; margin: 4px 0; }
blockquote { margin: .8rem 0; padding: 2px 14px; border-left: 3px solid var(--line); color: var(--muted); }
.toc h2 { font-size: .8rem; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); border: 0; margin: 0 0 6px; }
.toc ul { list-style: none; margin: 0; padding: 0; } .toc li { padding: 2px 0; } .toc li.l3 { padding-left: 12px; font-size: .88rem; }
.toc a { color: var(--fg); }
.page-footer { display:flex; justify-content: space-between; gap: 12px; margin-top: 40px; padding-top: 14px; border-top: 1px solid var(--line); }
@media (max-width: 1100px) { .layout { grid-template-columns: var(--nav-w) minmax(0,1fr); } .toc { display:none; } }
@media (max-width: 760px) { .layout { display:block; } .sidebar { position: static; max-height: none; border-right: 0;
  border-bottom: 1px solid var(--line); } .content { padding: 18px; } }
"""


# ---------------------------------------------------------------- build
def nbdev_settings() -> tuple[str, str, str]:
    "Site title, the hosted docs URL nbdev links to, the repository URL and the package name, from `pyproject.toml`."
    from nbdev.config import get_config
    cfg = get_config()
    base = (cfg.get("doc_host", "") or "").rstrip("/") + "/" + (cfg.get("doc_baseurl", "") or "").strip("/")
    return (cfg.get("title") or cfg.get("lib_name") or "docs", base.rstrip("/") + "/", cfg.get("git_url", ""),
            cfg.get("lib_name") or cfg.get("lib_path", "").split("/")[-1])


def module_pages(pages: dict[str, Page], lib: str) -> dict[str, str]:
    "Module name (`ecgmeta.data`) -> site path of the notebook with that `#| default_exp`."
    import json
    res = {}
    for page in pages.values():
        try: cells = json.loads(page.src.read_text()).get("cells", [])
        except (OSError, ValueError): continue
        for c in cells:
            if c.get("cell_type") == "code" and (m := re.search(r"^\s*#\|\s*default_exp\s+(\S+)", src_text(c.get("source")), re.M)):
                res[f"{lib}.{m.group(1)}"] = page.out_rel
                break
    return res


def find_notebooks(nbs: Path) -> list[Path]:
    "Notebooks nbdev would document: no `_`/`.` files or folders, no checkpoints."
    res = []
    for p in sorted(nbs.rglob("*.ipynb")):
        rel = p.relative_to(nbs)
        if any(part.startswith(("_", ".")) for part in rel.parts): continue
        res.append(p)
    return res


def execute_notebook(src: Path, dst: Path, cfg: BuildConfig) -> str:
    "Run `src` as `nbdev-test` would (flagged cells skipped) and save it with outputs to `dst`; '' or the error."
    from execnb.shell import CaptureShell
    from fastcore.nbio import write_nb
    from fastcore.xtras import working_directory
    from nbdev.process import NBProcessor
    from nbdev.test import _skip_cell
    nb = NBProcessor(src, rm_directives=False, process=True).nb
    skip = _skip_cell(nb, list(cfg.skip_flags))
    k, err = CaptureShell(src), ""
    prev = os.environ.get("IN_TEST"); os.environ["IN_TEST"] = "1"
    try:
        with working_directory(src.parent):
            k.run_all(nb, exc_stop=True, preproc=skip, cell_timeout=cfg.cell_timeout)
    except Exception as e:  # keep what ran; the build reports the failure
        err = f"{type(e).__name__}: {e}"
    finally:
        if prev is None: os.environ.pop("IN_TEST", None)
        else: os.environ["IN_TEST"] = prev
    for c in nb.cells:
        for a in [a for a in c if a.endswith("_")]: c.pop(a, None)
    dst.parent.mkdir(parents=True, exist_ok=True)
    write_nb(nb, dst)
    return err


def _mixed_import_cell(cell) -> bool:
    "A code cell that imports *and* does other work, with no export/show_doc: nbdev runs it for the docs, we do not."
    import ast
    if cell.cell_type != "code" or not cell.source: return False
    if set(getattr(cell, "directives_", {}) or {}) & {"export", "exports", "exporti", "exec_doc"}: return False
    try: trees = cell.parsed_()
    except Exception: return False
    if not trees: return False
    if any(isinstance(t, ast.Expr) and isinstance(t.value, ast.Call) and getattr(t.value.func, "id", "") == "show_doc"
           for t in trees): return False
    has_import = any(isinstance(n, (ast.Import, ast.ImportFrom)) for t in trees for n in ast.walk(t))
    return has_import and not all(isinstance(t, (ast.Import, ast.ImportFrom)) for t in trees)


def _fallback_show_doc(source: str, ns: dict) -> list[dict]:
    "Heading, signature (annotations left unevaluated) and docstring for a `show_doc(x)` that nbdev could not render."
    import ast
    import inspect
    outs = []
    for t in ast.parse("\n".join(l for l in source.splitlines() if not l.lstrip().startswith("#|"))).body:
        if not (isinstance(t, ast.Expr) and isinstance(t.value, ast.Call) and t.value.args): continue
        expr = ast.unparse(t.value.args[0])
        try: obj = eval(expr, ns)
        except Exception: continue
        name = getattr(obj, "__qualname__", expr)
        try: sig = str(inspect.signature(obj))
        except (TypeError, ValueError): sig = "(...)"
        kind = "class" if inspect.isclass(obj) else "def"
        doc = (inspect.getdoc(obj) or "").strip().splitlines()
        md = f"---\n\n### {name}\n\n```python\n{kind} {name}{sig}\n```\n\n" + (f"*{doc[0]}*" if doc else "")
        outs.append({"output_type": "display_data", "metadata": {}, "data": {"text/markdown": md, "text/plain": name}})
    return outs


def _doc_filter(problems: list[str]):
    "nbdev's `FilterDefaults`, except that a failing non-`show_doc` cell is reported instead of fatal."
    from nbdev.processors import FilterDefaults, exec_show_docs

    class tolerant_exec_show_docs(exec_show_docs):
        def __call__(self, cell):
            if _mixed_import_cell(cell):  # nbdev would run it (slow, often fails without earlier cells)
                return
            outs = cell.get("outputs")
            try: super().__call__(cell)
            except Exception as e:
                self.k.exc = None
                if "show_doc(" in (cell.source or ""):
                    cell["outputs"] = _fallback_show_doc(cell.source, self.k.user_ns)
                    problems.append(f"show_doc failed ({type(e.__cause__ or e).__name__}: {e.__cause__ or e}); "
                                    "rendered the plain signature and docstring instead")
                    return
                if outs is not None: cell["outputs"] = outs
                lines = str(e).splitlines() or [type(e).__name__]
                problems.append(f"{lines[0].rstrip(' :')}: {lines[-1]}")

    class Filter(FilterDefaults):
        def base_procs(self):
            return [tolerant_exec_show_docs if p is exec_show_docs else p for p in super().base_procs()]
    return Filter()


def process_notebook(path: Path, problems: list[str] | None = None) -> dict:
    "Apply nbdev's docs processors (what `nbdev-proc-nbs` does) in the notebook's folder; returns a dict."
    import json
    from fastcore.nbio import nb2dict, read_nb
    from fastcore.xtras import working_directory
    nb = read_nb(path)
    prev = os.environ.get("IN_TEST"); os.environ["IN_TEST"] = "1"
    try:
        with working_directory(path.parent): _doc_filter([] if problems is None else problems)(nb)
    finally:
        if prev is None: os.environ.pop("IN_TEST", None)
        else: os.environ["IN_TEST"] = prev
    return json.loads(json.dumps(nb2dict(nb), default=str))


def build(cfg: BuildConfig) -> list[Page]:
    "Build the site described by `cfg`; returns the pages (with `.error` set where one failed)."
    t0 = time.time()
    nbs, out = cfg.nbs.resolve(), cfg.out.resolve()
    cfg = BuildConfig(nbs=nbs, out=out, execute=cfg.execute, skip_flags=cfg.skip_flags, cell_timeout=cfg.cell_timeout)
    site, site_base, repo, lib = nbdev_settings()
    if out.exists(): shutil.rmtree(out)
    out.mkdir(parents=True)
    srcs = find_notebooks(nbs)
    pages: dict[str, Page] = {}
    for p in srcs:
        rel = p.relative_to(nbs)
        pages[rel.as_posix()] = Page(src=p, rel=rel, out_rel=out_name(rel))
    pages_by_src = {k: v.out_rel for k, v in pages.items()}
    mod_pages = module_pages(pages, lib)
    stage = Path(tempfile.mkdtemp(prefix="ecgmeta_docs_"))
    try:
        for key, page in pages.items():
            t = time.time()
            src = page.src
            try:
                if any(fnmatch.fnmatch(key, g) for g in cfg.execute):
                    staged = stage / page.rel
                    if err := execute_notebook(page.src, staged, cfg):
                        page.error = f"execution failed: {err}"
                        log.error("%s: %s", key, page.error)
                    src = staged
                problems: list[str] = []
                nb = process_notebook(src, problems)
                for pr in problems:
                    page.warnings.append(pr)
                    log.info("%s: nbdev-docs would stop here: %s", key, pr)
                Renderer(page, cfg, site_base, pages_by_src, mod_pages).render(nb)
            except Exception as e:
                page.error = page.error or f"{type(e).__name__}: {e}"
                page.title = page.title or page.rel.stem
                page.body = f'<pre class="output-error">{html.escape(page.error)}</pre>'
                log.error("%s: %s", key, page.error)
            log.info("%-40s %5.1fs", key, time.time() - t)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    if "index.ipynb" not in pages:
        idx = Page(src=nbs, rel=Path("index.ipynb"), out_rel="index.html", title=site)
        idx.body = "<ul>" + "".join(f'<li><a href="{p.out_rel}">{html.escape(p.title)}</a></li>' for p in pages.values()) + "</ul>"
        pages["index.ipynb"] = idx
    unlink_dead_doclinks(pages)
    entries = read_sidebar(nbs, list(pages))
    order = []
    def _walk(es):
        for e in es:
            if e[0] == "page" and e[1] in pages and pages[e[1]] not in order: order.append(pages[e[1]])
            elif e[0] == "section": _walk(e[2])
    _walk(entries)
    for page in pages.values():
        root = "../" * (len(Path(page.out_rel).parts) - 1)
        toc = "".join(f'<li class="l{l}"><a href="#{i}">{html.escape(t)}</a></li>' for l, i, t in page.toc)
        toc = f"<h2>On this page</h2><ul>{toc}</ul>" if toc else ""
        pn = ""
        if page in order:
            i = order.index(page)
            prv = f'<a class="prev" href="{relurl(order[i-1].out_rel, page.out_rel)}">← {html.escape(order[i-1].title)}</a>' if i > 0 else "<span></span>"
            nxt = f'<a class="next" href="{relurl(order[i+1].out_rel, page.out_rel)}">{html.escape(order[i+1].title)} →</a>' if i + 1 < len(order) else "<span></span>"
            pn = prv + nxt
        desc = f'<p class="description">{html.escape(page.description)}</p>' if page.description else ""
        text = PAGE.format(title=html.escape(page.title), site=html.escape(site), root=root,
                           description_attr=html.escape(page.description, quote=True), description=desc,
                           nav=nav_html(entries, pages, page), body=page.body, toc=toc, prev_next=pn,
                           repo=html.escape(repo or "#", quote=True))
        dst = out / page.out_rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(text, encoding="utf-8")
    (out / "site.css").write_text(SITE_CSS)
    (out / "pygments.css").write_text(HtmlFormatter(style="friendly").get_style_defs(".highlight"))
    (out / "favicon.svg").write_text(FAVICON)
    (out / "logo.svg").write_text(FAVICON)
    styles = nbs / "styles.css"
    (out / "styles.css").write_text(styles.read_text() if styles.exists() else "")
    for f in nbs.rglob("*"):  # images and other assets notebooks refer to
        rel = f.relative_to(nbs)
        if f.is_file() and f.suffix.lower() in {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"} \
           and not any(part.startswith(("_", ".")) for part in rel.parts):
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, out / rel)
    (out / ".nojekyll").write_text("")
    n_err = sum(bool(p.error) for p in pages.values())
    log.info("wrote %d pages to %s in %.1fs (%d failed)", len(pages), out, time.time() - t0, n_err)
    return list(pages.values())


def main(argv: list[str] | None = None) -> int:
    "Command line entry point."
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--nbs", type=Path, default=ROOT / "nbs", help="notebook folder (default: nbs/)")
    ap.add_argument("--out", type=Path, default=ROOT / "_docs", help="output folder (default: _docs/)")
    ap.add_argument("--execute", nargs="?", action="append", const="*", default=None, metavar="GLOB",
                    help="execute notebooks (all, or those matching GLOB relative to nbs/; repeatable) before rendering")
    ap.add_argument("--flags", default="", help="cell flags to run anyway, e.g. 'slow' (default: skip slow and cuda cells)")
    ap.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", message="Found cells containing imports")
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    force = set(args.flags.split())
    cfg = BuildConfig(nbs=args.nbs, out=args.out, execute=tuple(args.execute or ()),
                      skip_flags=tuple(f for f in ("slow", "cuda") if f not in force))
    os.chdir(ROOT)  # nbdev reads pyproject.toml from the working directory
    pages = build(cfg)
    failed = [p for p in pages if p.error]
    for p in failed: print(f"FAILED {p.rel}: {p.error}", file=sys.stderr)
    for p in pages:
        for w in p.warnings: print(f"WARNING {p.rel}: nbdev-docs would stop here: {w}", file=sys.stderr)
    print(f"docs site written to {cfg.out.resolve()}/index.html ({len(pages)} pages, {len(failed)} failed)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
