# wefperf: the load tester (and its reference collector) as one slim image.
#
#   docker build -t wefperf:local .
#   docker run --rm -e WEF_ENDPOINT=http://my-collector:5985 wefperf:local
#
# Configured by the seed suite's environment variables (PERF_TEST_TOTAL_EVENTS,
# PERF_TEST_DURATION_SECS, PERF_TEST_BATCH_SIZE, PERF_TEST_TARGET_EPS,
# PERF_TEST_TIMEOUT_SECS, PERF_TEST_EVENT_TYPE, WEF_ENDPOINT, WEF_STATS_ENDPOINT,
# PERF_TEST_VERIFY_S3, S3_ENDPOINT, S3_BUCKET, AWS_ACCESS_KEY_ID,
# AWS_SECRET_ACCESS_KEY, and wefperf's own PERF_TEST_*; `wefperf profiles`
# shows them). None is set here on purpose: the environment outranks the
# profile, so a default baked into the image would silently override every
# profile's own value.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# Build stage: install wefperf from the source tree into a self-contained venv.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY src ./src
# [collector] brings the reference collector's embedded S3 (moto), so
# `wefperf collector` works in every mode, not only against MinIO.
# constraints.txt pins every dependency to the versions the test suite runs with.
RUN python -m venv /opt/wefperf \
 && /opt/wefperf/bin/pip install -c constraints.txt ".[collector]"

# Runtime stage: the venv only (same base image, so same interpreter path),
# run as an unprivileged user. No build tools, no source, no pip cache.
FROM ${PYTHON_IMAGE}
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/wefperf/bin:$PATH
COPY --from=build /opt/wefperf /opt/wefperf
RUN groupadd --gid 10001 wefperf \
 && useradd --create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin wefperf
# Numeric, so runtimes that check runAsNonRoot can tell it is not root.
USER 10001:10001
WORKDIR /home/wefperf
# compose.yaml mounts the volume wefperf-results here (PERF_TEST_RESULTS_DIR): an empty volume
# takes this folder's owner, so the unprivileged user can write its results into it.
RUN mkdir -p /home/wefperf/results
# The reference collector's port (`wefperf collector`); load tests listen on nothing.
EXPOSE 5985
# wefperf turns SIGINT into a clean stop with a partial report (exit 130), so
# `docker stop` sends that instead of SIGTERM.
STOPSIGNAL SIGINT
ENTRYPOINT ["wefperf"]
CMD ["run", "--profile", "baseline"]
