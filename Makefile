# Every target builds its own virtual environment from pyproject.toml.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[collector,test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/wefperf run --profile sustained-10k --embedded --results .demo-results.json

# pytest exits 5 when it collected nothing: that must fail, not pass.
test: $(STAMP)
	$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py --out docs/benchmarks.md --raw benchmarks/out/bench-raw.json

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
