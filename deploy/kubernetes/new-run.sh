#!/bin/sh
# Prepare one wefperf run on Kubernetes: a new run id, a start time every pod
# waits for, and the number of segments N, written to run.env beside this
# script (kustomization.yaml turns it into the wefperf-run ConfigMap, the Job's
# name and its completions/parallelism). Then: kubectl apply -k <this folder>.
#
#   sh deploy/kubernetes/new-run.sh            # N as before (run.env), start in 120 s
#   sh deploy/kubernetes/new-run.sh -n 8 -l 300
#
# The start time is shared so that the segments' plans line up: each pod waits
# for it after its collector health check. It must leave time for every pod to
# be scheduled and to pull the image; a pod that starts later still sends its
# whole share, and the lateness shows as schedule lag in the merged result.
set -eu

usage() {
    cat <<'USAGE'
usage: new-run.sh [-n SEGMENTS] [-l LEAD_SECS] [-f RUN_ENV]
  -n SEGMENTS   pods in the Job, each runs segment i/N (default: the value in run.env, else 2)
  -l LEAD_SECS  the run starts this many seconds from now (default 120)
  -f RUN_ENV    the file to write (default: run.env beside this script)
USAGE
}

die() {
    printf 'new-run.sh: %s\n' "$1" >&2
    exit 2
}

is_count() {
    case $1 in
        '' | *[!0-9]*) return 1 ;;
    esac
    [ "$1" -ge 1 ] 2>/dev/null
}

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
run_env="$here/run.env"
segments=""
lead=120

while getopts n:l:f:h opt; do
    case $opt in
        n) segments=$OPTARG ;;
        l) lead=$OPTARG ;;
        f) run_env=$OPTARG ;;
        h) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || die "unexpected argument: $1 (see -h)"

if [ -z "$segments" ] && [ -f "$run_env" ]; then
    segments=$(sed -n 's/^PERF_TEST_SEGMENTS=//p' "$run_env" | tail -n 1)
fi
segments=${segments:-2}
is_count "$segments" || die "-n must be a whole number of at least 1 (got '$segments')"
[ "$segments" -le 100000 ] || die "-n must be at most 100000 (got '$segments')"
case $lead in
    '' | *[!0-9]*) die "-l must be a whole number of seconds (got '$lead')" ;;
esac

# 12 lowercase hex digits: what wefperf's event marker accepts (lowercase
# letters and digits) and short enough for the Job's name, wefperf-<run id>.
run_id=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
[ ${#run_id} -eq 12 ] || die "could not read 6 random bytes from /dev/urandom"
now=$(date +%s)
start_at=$((now + lead))

tmp="$run_env.tmp.$$"
trap 'rm -f "$tmp"' EXIT
cat >"$tmp" <<EOF
# Written by new-run.sh at $(date -u +%Y-%m-%dT%H:%M:%SZ); run it again for the next run.
PERF_TEST_RUN_ID=$run_id
PERF_TEST_START_AT=$start_at
PERF_TEST_SEGMENTS=$segments
EOF
mv "$tmp" "$run_env"
trap - EXIT

# Where the shards go, for the merge command below.
shards=$(sed -n 's/^PERF_TEST_SHARD_RESULTS=//p' "$here/settings.env" 2>/dev/null | tail -n 1)
start_utc=$(date -u -d "@$start_at" +%H:%M:%S 2>/dev/null || date -u -r "$start_at" +%H:%M:%S 2>/dev/null || echo "$start_at")

cat <<EOF
run id $run_id: $segments segments, starting at $start_utc UTC (epoch $start_at, in $lead s)
wrote $run_env
next:
  kubectl apply -k $here
  kubectl wait --for=condition=complete --timeout=1h job/wefperf-$run_id
  wefperf merge ${shards:-s3://BUCKET/PREFIX}/ --run-id $run_id --verify-s3 --results merged.json
EOF
