# syntax=docker/dockerfile:1
# One image for every function. Build it with `make image` (image/build.py): it downloads the
# hash-locked wheels on the host into build/wheels, makes a local Debian base where no registry
# is reachable, tags the image by content and prints its size. On the official base:
#   make image PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest>
# Each Knative Service picks its function with FUNCTION_TARGET / FUNCTION_SOURCE
# (and FUNCTION_SIGNATURE_TYPE=cloudevent for notify); see service.yaml.

# Any Debian-based CPython 3.11: the official python:3.11-slim-bookworm (pin it by digest, see
# docs/deploy.md) or Debian's own python3 (image/base.sh makes one with debootstrap).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a virtualenv with the project and its hash-locked dependencies ----------------------
FROM ${PYTHON_IMAGE} AS build
# Offline from the staged wheels only; no pip cache left behind.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INDEX=1 \
    PIP_FIND_LINKS=/wheels
# A venv, not the system site-packages: Debian's python is externally managed (PEP 668).
RUN python3 -m venv /opt/venv
WORKDIR /src
COPY build/wheels /wheels
COPY image/requirements.txt image/build-requirements.txt ./image/
# Every file is checked against the sha256 in the lock; all of them are wheels: no compiler.
RUN /opt/venv/bin/pip install --require-hashes -r image/requirements.txt -r image/build-requirements.txt
# The project itself (non-editable, into site-packages): its wheel, built by `make image` on the
# host (image/wheelhouse.py), where a C compiler compiled shared.logs._rows for CPython 3.11; this
# stage has neither a compiler nor a network. Its dependencies are already there, and `pip check`
# proves the lock is complete. Then the venv sheds its installers (the runtime has no pip) and
# the kubernetes package its asyncio client (kubernetes.aio, ~70 MB of the ~130 MB package): the
# service uses the synchronous one only.
RUN /opt/venv/bin/pip install --no-deps /wheels/tekton_pipeline_listener-*.whl \
 && /opt/venv/bin/pip check \
 && /opt/venv/bin/pip uninstall --yes pip setuptools \
 && rm -r "$(/opt/venv/bin/python -c 'import kubernetes, os; print(os.path.dirname(kubernetes.__file__))')/aio"

# --- runtime: the venv, the function sources, a non-root user; no pip, no compilers ------------
FROM ${PYTHON_IMAGE} AS runtime
ARG PYTHON_IMAGE
LABEL org.opencontainers.image.title="tekton-pipeline-listener" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"
# The official image ships a pip installed by pip: remove it. A distribution's pip (Debian's
# python3-pip, PEP 668) is not pip's to remove; the local Debian base has none.
RUN if python3 -m pip --version >/dev/null 2>&1 \
      && [ ! -e "$(python3 -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')/EXTERNALLY-MANAGED" ]; then \
      python3 -m pip uninstall --yes pip setuptools wheel; \
    fi \
 && groupadd --system --gid 10001 listener \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin listener
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY functions ./functions
# Bytecode made now: the root file system is read-only at run time, so nothing compiled then is kept.
RUN python3 -m compileall -q /app/functions

# FUNCTION_TARGET/FUNCTION_SOURCE/FUNCTION_SIGNATURE_TYPE/PORT are read by the functions-framework
# CLI itself (click envvars); THREADS, WORKERS and CLOUD_RUN_TIMEOUT_SECONDS (0: no per-request
# timeout, so log streams are not cut by gunicorn) by its gunicorn application.
# Knative sets PORT from the container port; the default here is for `podman run`.
# HOME=/tmp: gunicorn puts its control socket under $HOME/.gunicorn and its workers' heartbeat
# files in /tmp; with readOnlyRootFilesystem, /tmp is the one writable place (an emptyDir).
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    HOME=/tmp \
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
