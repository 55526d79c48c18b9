# respin: every target sets up what it needs on a fresh machine.
#   make demo   run the kernel pipeline on the built-in fixture (no network needed)
#   make test   install what the tests need, then run them
#   make bench  benchmarks against the tools a user would use instead
#   make lint   ruff and mypy

SHELL := /bin/bash
# The venv is made from the system python so the PyPI `rpm` shim finds the
# system rpm bindings built for that very interpreter.
PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
SUDO   := $(shell test "$$(id -u)" = 0 || echo sudo -n)

APT_PKGS := rpm python3-rpm python3-venv cpio libarchive-tools patch diffutils iproute2 iputils-ping nftables \
            gzip xz-utils zstd lz4 bzip2 createrepo-c git
APT_BOOT := qemu-system-x86 linux-image-amd64 busybox-static
DNF_PKGS := rpm-build python3-rpm cpio bsdtar patch diffutils iproute iputils nftables gzip xz zstd lz4 bzip2 \
            createrepo_c git
DNF_BOOT := qemu-system-x86 kernel-core busybox

.PHONY: all demo test bench lint sysdeps venv clean

all: test

.stamp-sysdeps:
	@if command -v apt-get >/dev/null 2>&1; then \
	  missing=$$(for p in $(APT_PKGS) $(APT_BOOT); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ]; then \
	      echo "installing system packages:" $$missing; \
	      apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null \
	        || { echo "apt-get install failed"; exit 1; }; \
	    else echo "not root: cannot install" $$missing "(tests needing them skip)"; fi; \
	  fi; \
	elif command -v dnf >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then dnf install -y -q $(DNF_PKGS) $(DNF_BOOT) || exit 1; \
	  else echo "not root: skipping dnf install"; fi; \
	fi
	@touch $@

sysdeps: .stamp-sysdeps

$(VENV)/.stamp: pyproject.toml .stamp-sysdeps
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@$(PY) -m pip install -q --disable-pip-version-check -e tests/plugin_dist
	@touch $@

venv: $(VENV)/.stamp

demo: $(VENV)/.stamp
	@$(PY) -m fixtures.demo

test: $(VENV)/.stamp
	@$(PY) -m pytest -q tests

bench: $(VENV)/.stamp
	@$(PY) -m bench

lint: $(VENV)/.stamp
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) _respin .stamp-sysdeps .pytest_cache .mypy_cache .ruff_cache
