# Every target builds its own virtual environment from pyproject.toml, with the versions
# pinned in constraints.txt (regenerate it with `make lock`).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-wsman test test-busy lint bench lock clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[collector,test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/wefperf run --profile sustained-10k --embedded --results .demo-results.json
	@echo "Next: point it at your collector: WEF_ENDPOINT=http://HOST:5985 $(BIN)/wefperf run --profile baseline (README: Quick start)"

# The wec-3k profile (30 s of it) over WS-Management/HTTPS with a client certificate per host, against
# the embedded collector in TLS mode; the certificates live in a temporary folder. The collector's
# subscription asks for what a Windows-made one does by default, RenderedText (each event with its
# message), and offers MaxElements and MaxTime (docs/wsman.md); the output says what it offered and
# what the hosts sent.
DEMO_WSMAN_SUBSCRIPTION ?= MaxElements=100,MaxTime=10,ContentFormat=RenderedText
# Each host enumerates again this often (a fleet's GPO Refresh; 3600 s by default, too long for 30 s).
DEMO_WSMAN_REFRESH ?= 20
demo-wsman: $(STAMP)
	@d=$$(mktemp -d "$${TMPDIR:-/tmp}/wefperf-demo-wsman.XXXXXX") && \
	$(BIN)/wefperf certs ca --out "$$d" >/dev/null && \
	$(BIN)/wefperf run --profile wec-3k --duration-secs 30 --protocol wsman --embedded \
	  --embedded-subscription "$(DEMO_WSMAN_SUBSCRIPTION)" --refresh-secs $(DEMO_WSMAN_REFRESH) \
	  --client-ca-cert "$$d/ca.crt" --client-ca-key "$$d/ca.key" --client-cert-cache "$$d/cache" \
	  --results .demo-wsman-results.json; rc=$$?; rm -rf "$$d"; exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

# pytest exits 5 when it collected nothing: that must fail, not pass. Most end-to-end tests wait on
# timers and sockets, not the CPU, so two workers (pytest-xdist) halve the wall time on 2 cores;
# each test file stays on one worker (its module fixtures run once). PYTEST_WORKERS=0: one process.
PYTEST_WORKERS ?= 2
test: lint
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

# The suite as CI's shared machines run it: 3 runs, each with two CPU-spinning processes beside it
# (scripts/test_busy.py starts and stops them); every test must hold. BUSY_RUNS / BUSY_BURNERS.
BUSY_RUNS ?= 3
BUSY_BURNERS ?= 2
test-busy: $(STAMP)
	$(BIN)/python scripts/test_busy.py --runs $(BUSY_RUNS) --burners $(BUSY_BURNERS) -n $(PYTEST_WORKERS) --dist loadfile

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
