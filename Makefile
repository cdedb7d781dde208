# Lyra's bootstrap. The README's two commands are `make paper` (the main job) and `make test`.
# Both create .venv and install what they need; a second run skips every finished step.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
CONSTRAINTS := requirements/constraints.txt
PAPER_ARGS ?=
HB_ARGS ?=

.PHONY: paper test lint typecheck unit install freeze clean bench compose-client hummingbot client-tools

paper: $(VENV)/.stamp-lyra  ## Phase-3 paper run, offline, on the embedded defaults
	$(VENV)/bin/lyra-governor paper $(PAPER_ARGS)

# Hummingbot's own terminal with Lyra's scripts (root hbot/; `make hummingbot HB_ARGS=--headless`
# with CONFIG_PASSWORD set starts conf_lyra_market_making.yml without the UI).
hummingbot: $(VENV)/.stamp-client
	$(VENV)/bin/lyra-governor hummingbot $(HB_ARGS)

test: $(VENV)/.stamp-client compose-client client-tools  ## ruff + mypy + the whole pytest suite (unit, hummingbot, services, e2e)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest

unit: $(VENV)/.stamp-lyra
	$(VENV)/bin/pytest -m unit

bench: $(VENV)/.stamp-lyra
	for b in bench/[!_]*.py; do $(PY) $$b --quick || exit 1; done

install: $(VENV)/.stamp-lyra

$(PY):
	$(PYTHON) -m venv $(VENV)

# Cython, numpy and setuptools first: Hummingbot's extensions build against them.
$(VENV)/.stamp-build: $(PY) requirements/build.txt $(CONSTRAINTS)
	$(PIP) install -q -c $(CONSTRAINTS) -r requirements/build.txt
	touch $@

# Hummingbot: no wheel on PyPI, and `pip install hummingbot` fails on 3.11 (pandas-ta needs 3.12),
# so: --no-deps --no-build-isolation, then its real runtime deps. pip caches the built wheel.
$(VENV)/.stamp-hummingbot: $(VENV)/.stamp-build requirements/hummingbot.txt $(CONSTRAINTS)
	$(PIP) install -q --no-deps --no-build-isolation -c $(CONSTRAINTS) hummingbot==20260922
	$(PIP) install -q -c $(CONSTRAINTS) -r requirements/hummingbot.txt
	touch $@

$(VENV)/.stamp-lyra: $(VENV)/.stamp-hummingbot setup.cfg $(CONSTRAINTS)
	$(PIP) install -q --no-build-isolation -c $(CONSTRAINTS) -e '.[dev]'
	touch $@

# Hummingbot's terminal client needs a few more packages than its library (asyncssh, ptpython);
# tools.txt: the Dockerfile linter the tests run.
$(VENV)/.stamp-client: $(VENV)/.stamp-lyra requirements/client.txt requirements/tools.txt $(CONSTRAINTS)
	$(PIP) install -q -c $(CONSTRAINTS) -r requirements/client.txt -r requirements/tools.txt
	touch $@

# The deploy test runs `docker compose config` (no engine needed). Debian's docker-compose is the
# client when the compose plugin is absent; installed only as root on a machine with apt.
compose-client:
	@docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    { echo "installing Debian's docker-compose (client only) for the deploy-file test"; \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null 2>&1 || \
	      { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null; }; }; } || \
	  echo "no Docker Compose client and no way to install one: the deploy-file test will fail (install the compose plugin or docker-compose)"

# The real-client test drives Hummingbot's terminal through tmux; `promtool check rules` checks
# the alert rules (Debian's prometheus package). Installed only as root on a machine with apt.
client-tools:
	@for tool in tmux:tmux promtool:prometheus; do cmd=$${tool%%:*}; pkg=$${tool##*:}; \
	  command -v $$cmd >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    { echo "installing Debian's $$pkg (for $$cmd in the tests)"; \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$pkg >/dev/null 2>&1 || \
	      { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$pkg >/dev/null; }; }; } || \
	  echo "no $$cmd and no way to install it: the tests that need it will fail (install $$pkg)"; \
	done

freeze:
	$(PIP) freeze --exclude-editable | grep -vi '^lyra'

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
