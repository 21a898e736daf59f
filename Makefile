# `make test` and `make run` work on a fresh Debian bookworm machine: they install what they need.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8080

.PHONY: all install sandbox-deps client-deps image-deps image test lint run sandbox bench clean

all: test

# setup.py compiles shared/logs/_rows.c where gcc and Python's headers are (as root they are
# installed first); a change to it needs the editable install run again.
$(VENV)/.installed: pyproject.toml constraints.txt setup.py shared/logs/_rows.c
	@[ "$$(id -u)" != 0 ] || { command -v gcc >/dev/null && \
		[ -e "$$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ]; } || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			gcc libc6-dev python3-dev >/dev/null)
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

install: $(VENV)/.installed

# etcd, kubectl and a kube-apiserver built from Debian's sources (cached under ~/.cache); as root
# also the real node: a kubelet from the same sources, containerd, runc, CNI plugins, busybox.
NODE_FLAG := $(shell [ "$$(id -u)" = 0 ] && echo --node)
sandbox-deps:
	bash tests/sandbox/install.sh $(NODE_FLAG) >/dev/null

# The clients some tests drive, from Debian (as root): chromium + chromium-driver for the live page,
# node + npm for the SSE client (npm's `eventsource`, pinned in tests/sse/package-lock.json). Only
# what is missing: a machine's own Node.js (NodeSource's bundles npm) conflicts with Debian's npm.
CLIENT_PACKAGES = $(if $(shell command -v chromedriver),,chromium chromium-driver) \
	$(if $(shell command -v npm),,nodejs npm)
client-deps:
	@[ -z "$(strip $(CLIENT_PACKAGES))" ] || [ "$$(id -u)" != 0 ] || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			$(CLIENT_PACKAGES) >/dev/null)

# podman, runc and debootstrap from Debian (as root); podman's settings come from image/containers.conf.
image-deps:
	bash image/install-tools.sh

# The service image, on a Debian base made here with debootstrap (cached under ~/.cache), or on
# PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest>; prints its size and its reference.
image: install image-deps
	$(PY) -m image.build

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Two workers: the modules that hold the machine (the real node, podman, the bench) run one after
# another on one of them while the rest share both (tests/conftest.py); TEST_WORKERS=0 runs serially.
TEST_WORKERS ?= 2
test: install sandbox-deps client-deps lint image
	$(PY) -m pytest -q -n $(TEST_WORKERS)

# The service on the local sandbox with demo runs, all functions behind one router on $(PORT).
run: install sandbox-deps
	PORT=$(PORT) $(PY) -m tests.sandbox.demo

# The sandbox alone, with a demo scenario on a loop; prints the kubeconfig path.
sandbox: install sandbox-deps
	$(PY) -m tests.sandbox

# As root, every figure on the real node and on the stand-in, one after the other in the same run.
BENCH_UPSTREAMS := $(shell [ "$$(id -u)" = 0 ] && echo standin,node || echo standin)
bench: install sandbox-deps
	$(PY) -m bench --upstream $(BENCH_UPSTREAMS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
