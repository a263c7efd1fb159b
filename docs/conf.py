"""Sphinx configuration of the documentation site; `tools/build_docs.py` runs Sphinx with it.

The sources are nbdev's processed notebooks in `_proc/`, already executed (and cached with jupyter-cache)
by `tools/build_docs.py`, so myst-nb only renders them here.
"""
from pathlib import Path

from nbdev.config import get_config

project = get_config().get("title") or "docs"  # nbdev's settings in pyproject.toml (Sphinx runs in the repository)
extensions = ["myst_nb"]
exclude_patterns = [".doctrees", ".jupyter_execute", "**/.ipynb_checkpoints"]
root_doc = "index"

# notebooks: executed before nbdev processing, so never here
nb_execution_mode = "off"
nb_render_markdown_format = "myst"  # show_doc output: headings, tables and fenced code
nb_merge_streams = True
myst_enable_extensions = ["attrs_inline", "attrs_block", "colon_fence", "deflist"]
myst_all_links_external = True  # tools/build_docs.py has already made links to pages relative `.html` links

html_theme = "furo"
html_title = project
html_static_path = ["static"]
html_css_files = ["ecgmeta.css"]
html_favicon = "static/favicon.svg"
html_copy_source = False
html_show_sourcelink = False
html_last_updated_fmt = None


def _outputs_beside_sources(app):
    "myst-nb writes output images to `<outdir>/../jupyter_execute`; keep them in the (ignored) source folder."
    app.env.mystnb_config = app.env.mystnb_config.copy(output_folder=str(Path(app.srcdir) / ".jupyter_execute"))


def setup(app):
    app.connect("builder-inited", _outputs_beside_sources, priority=900)  # after myst-nb's own handler
