# yikatong - `make demo` and `make test` do all the set-up on a fresh Debian machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint bench fuzz setup system-deps clean

demo: $(STAMP)
	$(BIN)/ykt demo

# pytest exits 5 when it collects no tests: an empty run proves nothing, so it fails here.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	  exit $$rc

# The adversarial fuzzers with many more cases than `make test` runs (docs/security.md):
# every API operation on SQLite and PostgreSQL, and mutated card traces from a fresh seed.
FUZZ_EXAMPLES  ?= 300
FUZZ_MUTATIONS ?= 2000
fuzz: $(STAMP)
	YKT_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) YKT_FUZZ_MUTATIONS=$(FUZZ_MUTATIONS) \
	  YKT_FUZZ_SEED=$${YKT_FUZZ_SEED:-$$(date +%s)} \
	  $(BIN)/pytest -p no:cacheprovider tests/adversarial/test_api_fuzz.py \
	  tests/adversarial/test_trace_fuzz.py

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
