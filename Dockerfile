# syntax=docker/dockerfile:1
# One image for every function. Build from the repository root:
#   docker build -t <registry>/tekton-pipeline-listener:<version> .
# Each Knative Service picks its function with FUNCTION_TARGET / FUNCTION_SOURCE
# (and FUNCTION_SIGNATURE_TYPE=cloudevent for notify); see service.yaml.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a virtualenv with the project and its pinned dependencies --------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
WORKDIR /src
# Dependencies are pinned in pyproject.toml and, transitively, in constraints.txt; `pip install .` installs them and the `shared` package
# (non-editable, into the venv's site-packages). All of them ship wheels: no compiler is needed.
COPY pyproject.toml README.md constraints.txt ./
COPY shared ./shared
RUN /opt/venv/bin/pip install -c constraints.txt . \
 && /opt/venv/bin/pip uninstall --yes pip setuptools wheel

# --- runtime: the venv, the function sources, a non-root user; no pip, no compilers ------------
FROM ${PYTHON_IMAGE} AS runtime
RUN python -m pip uninstall --yes pip setuptools wheel \
 && groupadd --system --gid 10001 listener \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin listener
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY functions ./functions

# FUNCTION_TARGET/FUNCTION_SOURCE/FUNCTION_SIGNATURE_TYPE/PORT are read by the functions-framework
# CLI itself (click envvars); THREADS, WORKERS and CLOUD_RUN_TIMEOUT_SECONDS (0: no per-request
# timeout, so log streams are not cut by gunicorn) by its gunicorn application.
# Knative sets PORT from the container port; the default here is for `docker run`.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FUNCTION_TARGET=health \
    FUNCTION_SOURCE=/app/functions/health/main.py \
    FUNCTION_SIGNATURE_TYPE=http \
    PORT=8080 \
    THREADS=8 \
    WORKERS=1 \
    CLOUD_RUN_TIMEOUT_SECONDS=0

USER 10001:10001
EXPOSE 8080
# Exec form: functions-framework (the gunicorn arbiter) is PID 1 and receives SIGTERM itself,
# so in-flight requests drain (gunicorn's graceful shutdown) instead of a shell swallowing it.
CMD ["functions-framework"]
