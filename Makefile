# Every target creates .venv on first use; nothing needs to be installed by hand but Python, make and npm.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_EXAMPLE := plugin_sdk/examples/node-executor
NODE_STAMP := $(NODE_EXAMPLE)/node_modules/.installed

.PHONY: install run test bench proto lint

install: $(STAMP) $(NODE_STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

$(NODE_STAMP): $(NODE_EXAMPLE)/package.json $(NODE_EXAMPLE)/package-lock.json
	@command -v npm >/dev/null || { echo "npm is missing: install Node.js 18+ and npm (Debian: apt-get install nodejs npm)"; exit 1; }
	cd $(NODE_EXAMPLE) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The Go example plugin, built offline from Debian's Go, go-plugin and grpc (installed first when
# run as root; otherwise the script says which packages to install). Go's cache makes a rebuild ~1 s.
.PHONY: go-example
go-example:
	sh scripts/build_go_example.sh

run: install
	$(VENV)/bin/horae agent --dev

test: install go-example
	sh scripts/ensure_chromium.sh
	$(PY) -m pytest tests -q

bench: install
	$(PY) -m tests.bench

proto: $(STAMP)
	$(PY) scripts/gen_proto.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
