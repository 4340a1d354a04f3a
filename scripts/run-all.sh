#!/usr/bin/env bash
# Run every wefperf profile against the compose stack, in order, then print a
# summary table and tear the stack down.
#
# Usage: scripts/run-all.sh [--reference] [--keep] [--results DIR] [PROFILE...]
#
#   --reference    test wefperf's reference collector (service wef-reference)
#                  instead of the real one (wef-server, wef-server-10k-sustained)
#   --keep         leave the stack running afterwards (default: `down -v`)
#   --results DIR  where the results go (default: results/run-all-<UTC time>)
#   PROFILE...     a subset, run in the order given (default: all six)
#
# Where the numbers come from: every run writes its results JSON
# (PERF_TEST_RESULTS) into DIR on the host, bind-mounted at /results and
# written as the calling user (`--user uid:gid`), so the files are yours to
# keep. The verdict is each run's exit code (0 pass, 1 fail, 2 configuration
# error, 130 interrupted), recorded in DIR/exit-codes.tsv; the other columns
# are read from DIR/<profile>.json: results.events_sent,
# results.events_per_second_overall, verdict.target_ratio (else the rate over
# configuration.target_eps) and s3_verification.files_found.
#
# Exit code: 0 when every run passed, else 130 if interrupted, 2 if any run
# had a configuration error, 1 otherwise. Set COMPOSE to choose the compose
# command (default: `docker compose`, else `docker-compose`). It first asks the
# Docker engine (`docker info`, RUN_ALL_ENGINE_TIMEOUT seconds, default 10):
# with none reachable it says so in one line and exits 2, creating nothing.
set -uo pipefail

ALL_PROFILES=(baseline target-100k target-200k target-500k sustained-10k max-throughput)

die() { echo "run-all: $*" >&2; exit 2; }

service_for() {
  case "$1" in
    baseline) echo performance-test ;;
    target-100k) echo performance-test-100k ;;
    target-200k) echo performance-test-200k ;;
    target-500k) echo performance-test-500k ;;
    sustained-10k) echo performance-test-10k-sustained ;;
    max-throughput) echo performance-test-max-throughput ;;
    *) return 1 ;;
  esac
}

server_for() {
  case "$1" in
    sustained-10k | max-throughput) echo wef-server-10k-sustained ;;
    *) echo wef-server ;;
  esac
}

reference=0 keep=0 results="" profiles=()
while [ $# -gt 0 ]; do
  case "$1" in
    --reference) reference=1 ;;
    --keep) keep=1 ;;
    --results) [ $# -ge 2 ] || die "--results needs a directory"; results=$2; shift ;;
    --results=*) results=${1#--results=} ;;
    -h | --help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) service_for "$1" >/dev/null || die "unknown profile $1 (one of: ${ALL_PROFILES[*]})"
       profiles+=("$1") ;;
  esac
  shift
done
[ ${#profiles[@]} -gt 0 ] || profiles=("${ALL_PROFILES[@]}")

cd "$(dirname "$0")/.." || die "cannot find the project directory"

if [ -n "${COMPOSE:-}" ]; then
  read -r -a compose <<<"$COMPOSE"
elif docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
else
  die "neither 'docker compose' nor 'docker-compose' works here: install Docker Compose"
fi

# Without an engine every compose command fails, docker-compose 1.x with a
# page of Python tracebacks, so ask the engine once, briefly, before anything
# else and before a results directory exists. `docker info` answers from the
# engine (the client alone cannot), and the timeout covers a DOCKER_HOST that
# never answers.
engine_check() {
  local out rc limit=${RUN_ALL_ENGINE_TIMEOUT:-10}
  if command -v timeout >/dev/null 2>&1; then
    out=$(timeout "$limit" docker info --format '{{.ServerVersion}}' 2>&1)
  else
    out=$(docker info --format '{{.ServerVersion}}' 2>&1)
  fi
  rc=$?
  [ $rc -ne 0 ] || return 0
  if [ $rc -eq 124 ]; then
    out="no answer within $limit s"
  else
    # docker's own first line says why (no socket, permission, refused).
    out=$(printf '%s\n' "$out" | sed -n '/[^[:space:]]/{p;q;}')
  fi
  die "no Docker engine is reachable (docker info: ${out:-exit code $rc}); start Docker or set DOCKER_HOST, then run again"
}
command -v docker >/dev/null 2>&1 || die "the docker command is not on PATH: install Docker"
engine_check

results=${results:-results/run-all-$(date -u +%Y%m%dT%H%M%SZ)}
made_results=0
[ -e "$results" ] || made_results=1
mkdir -p "$results" || die "cannot create results directory $results"
results=$(cd "$results" && pwd)
: >"$results/exit-codes.tsv"

if [ $reference -eq 1 ]; then
  servers=(wef-reference)
else
  servers=()
  for p in "${profiles[@]}"; do
    s=$(server_for "$p")
    [[ " ${servers[*]} " == *" $s "* ]] || servers+=("$s")
  done
fi

# shellcheck disable=SC2317,SC2329  # called from the EXIT trap
teardown() {
  # A stop before the first run (the build or the stack failed) leaves no
  # empty results directory behind, if this script made it.
  if [ "$made_results" -eq 1 ] && [ ! -s "$results/exit-codes.tsv" ]; then
    rm -f "$results/exit-codes.tsv" && rmdir "$results" 2>/dev/null
  fi
  if [ "$keep" -eq 0 ]; then
    echo "== Tearing the stack down"
    "${compose[@]}" down -v --remove-orphans
  else
    echo "== Leaving the stack running (--keep): '${compose[*]} down -v' removes it"
  fi
}

# Polls the container's health until healthy; returns 1 after 180 s or on 'unhealthy'.
wait_healthy() {
  local svc=$1 id status deadline=$((SECONDS + 180))
  while [ $SECONDS -lt $deadline ]; do
    id=$("${compose[@]}" ps -q "$svc" 2>/dev/null | head -n 1)
    if [ -n "$id" ]; then
      status=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id" 2>/dev/null)
      case "$status" in
        healthy) return 0 ;;
        unhealthy | exited | dead) echo "run-all: $svc is $status; see '${compose[*]} logs $svc'" >&2; return 1 ;;
      esac
    fi
    sleep 2
  done
  echo "run-all: $svc was not healthy after 180 s; see '${compose[*]} logs $svc'" >&2
  return 1
}

summarize() {
  local script='
import json, sys
from pathlib import Path

d = Path(sys.argv[1])
VERDICTS = {"0": "PASS", "1": "FAIL", "2": "CONFIG ERROR", "130": "INTERRUPTED"}

def get(data, dotted):
    """data["a"]["b"] for "a.b", or None where any part is missing."""
    for key in dotted.split("."):
        data = data.get(key) if isinstance(data, dict) else None
    return data

def num(v, fmt):
    return format(v, fmt) if isinstance(v, (int, float)) and not isinstance(v, bool) else "-"

rows = []
for line in (d / "exit-codes.tsv").read_text().splitlines():
    if not line.strip():
        continue
    profile, rc = line.split("\t")[:2]
    data = {}
    path = d / f"{profile}.json"
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except ValueError:
            data = {}
    sent = get(data, "results.events_sent")
    rate = get(data, "results.events_per_second_overall")
    target = get(data, "configuration.target_eps")
    ratio = get(data, "verdict.target_ratio")
    files = get(data, "s3_verification.files_found")
    pct = "-"
    if isinstance(ratio, (int, float)):
        pct = f"{100 * ratio:.1f}%"
    elif isinstance(rate, (int, float)) and isinstance(target, (int, float)) and target > 0:
        pct = f"{100 * rate / target:.1f}%"
    elif target == 0 and rate is not None:
        pct = "unlimited"
    verdict = VERDICTS.get(rc, f"ERROR (exit {rc})")
    if not data and rc != "130":
        verdict += " (no results file)"
    rows.append((profile, num(sent, ",d"), num(rate, ",.1f"), pct, num(files, "d"), verdict))

head = ("profile", "events sent", "rate (ev/s)", "target %", "S3 files", "verdict")
widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
right = {1, 2, 3, 4}
def fmt(r):
    cells = (c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return "  ".join(cells).rstrip()
print(fmt(head))
print("  ".join("-" * w for w in widths))
for r in rows:
    print(fmt(r))
'
  if command -v python3 >/dev/null 2>&1; then
    python3 -c "$script" "$results"
  else
    # No Python on the host: the wefperf image has one.
    "${compose[@]}" run --rm --no-deps -T --entrypoint python -v "$results:/results:ro" \
      performance-test -c "$script" /results
  fi
}

trap teardown EXIT
trap 'echo "run-all: interrupted" >&2; exit 130' INT TERM

echo "== Building the wefperf image"
"${compose[@]}" build performance-test || die "the wefperf image did not build"

echo "== Starting MinIO and ${servers[*]}"
"${compose[@]}" up -d "${servers[@]}" || die "the stack did not start; see '${compose[*]} logs'"
for s in "${servers[@]}"; do
  wait_healthy "$s" || die "$s did not become healthy"
done

interrupted=0
for p in "${profiles[@]}"; do
  svc=$(service_for "$p")
  echo
  echo "== Profile $p (service $svc)"
  # PERF_TEST_RESULTS_DIR (the services' own volume) would outrank PERF_TEST_RESULTS: empty turns it off.
  args=(run --rm --user "$(id -u):$(id -g)" -v "$results:/results" -e PERF_TEST_RESULTS_DIR= -e "PERF_TEST_RESULTS=/results/$p.json")
  [ -t 0 ] || args+=(-T)
  if [ $reference -eq 1 ]; then
    args+=(--no-deps -e WEF_ENDPOINT=http://wef-reference:5985
      -e WEF_STATS_ENDPOINT=http://wef-reference:5985/stats/throughput)
  fi
  # Ctrl-C reaches the run too, which stops with a partial report; then stop here.
  trap 'interrupted=1' INT TERM
  "${compose[@]}" "${args[@]}" "$svc"
  rc=$?
  trap 'echo "run-all: interrupted" >&2; exit 130' INT TERM
  [ $rc -ne 130 ] || interrupted=1
  printf '%s\t%s\n' "$p" "$rc" >>"$results/exit-codes.tsv"
  [ $interrupted -eq 0 ] || break
done

echo
echo "== Summary (results in $results)"
summarize

codes=$(cut -f2 "$results/exit-codes.tsv")
if [ $interrupted -eq 1 ]; then
  exit 130
elif grep -qx 2 <<<"$codes"; then
  exit 2
elif grep -qvx 0 <<<"$codes"; then
  exit 1
fi
exit 0
