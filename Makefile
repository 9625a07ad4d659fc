# yikatong - `make demo` and `make test` do all the set-up on a fresh Debian machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint bench setup system-deps clean

demo: $(STAMP)
	$(BIN)/ykt demo

# pytest exits 5 when it collects no tests: an empty run proves nothing, so it fails here.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	  exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/pytest benchmarks --benchmark-only -s --benchmark-columns=min,median,mean,max,rounds

setup: $(STAMP)

system-deps:
	scripts/install-system-deps

$(STAMP): pyproject.toml scripts/system-packages.txt scripts/install-system-deps
	scripts/install-system-deps
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis .benchmarks *.egg-info
