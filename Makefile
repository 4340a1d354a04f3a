# Every target builds its own virtual environment from pyproject.toml, with the versions
# pinned in constraints.txt (regenerate it with `make lock`).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench lock clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[collector,test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/wefperf run --profile sustained-10k --embedded --results .demo-results.json
	@echo "Next: point it at your collector: WEF_ENDPOINT=http://HOST:5985 $(BIN)/wefperf run --profile baseline (README: Quick start)"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

# pytest exits 5 when it collected nothing: that must fail, not pass.
test: lint
	$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py --out docs/benchmarks.md --raw benchmarks/out/bench-raw.json

# pip-tools resolves pyproject.toml's dependencies and extras into exact pins.
lock:
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install -q pip-tools
	.lock-venv/bin/pip-compile -q --no-emit-index-url --no-emit-find-links --strip-extras --extra collector --extra test -o constraints.txt pyproject.toml
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
