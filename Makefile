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
# Editable installs as a plain path entry: setuptools' default import hook costs every
# `respin` call about 10 ms of start-up, which a short command (`initrd list`) feels.
EDITABLE := --config-settings editable_mode=compat
SUDO   := $(shell test "$$(id -u)" = 0 || echo sudo -n)

APT_PKGS := rpm python3-rpm python3-venv cpio libarchive-tools patch diffutils iproute2 iputils-ping nftables \
            gzip xz-utils zstd lz4 bzip2 lzop liblzo2-dev gcc python3-dev createrepo-c git \
            dnf dnf-plugins-core libkrb5-dev openssl make systemd network-manager dbus
APT_BOOT := qemu-system-x86 linux-image-amd64 busybox-static
DNF_PKGS := rpm-build python3-rpm cpio bsdtar patch diffutils iproute iputils nftables gzip xz zstd lz4 bzip2 \
            lzop lzo-devel gcc python3-devel createrepo_c git \
            dnf-plugins-core krb5-devel openssl make systemd-networkd NetworkManager dbus-daemon
DNF_BOOT := qemu-system-x86 kernel-core busybox

.PHONY: all demo test bench lint sysdeps venv clean

all: test

# The tests run NetworkManager and systemd-networkd in namespaces of their own; on a
# host booted with systemd, installing them must not start them on its own network.
.stamp-sysdeps:
	@if [ "$$(id -u)" = 0 ] && [ -d /run/systemd/system ]; then \
	  systemctl mask --quiet NetworkManager.service NetworkManager-wait-online.service 2>/dev/null || true; \
	fi
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

$(VENV)/.stamp: pyproject.toml tests/plugin_dist/pyproject.toml .stamp-sysdeps
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]' $(EDITABLE)
	@$(PY) -m pip install -q --disable-pip-version-check -e tests/plugin_dist $(EDITABLE)
	@# python-lzo builds from source against liblzo2; without it lzo images are refused in one line.
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[lzo]' $(EDITABLE) 2>/dev/null \
	  || echo "python-lzo could not be built: lzo-compressed initrds will be refused"
	@# The koji client (its gssapi dependency builds against libkrb5); without it the koji backend says so.
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[koji]' $(EDITABLE) 2>/dev/null \
	  || echo "the koji client could not be installed: the koji backend and its tests are unavailable"
	@touch $@

venv: $(VENV)/.stamp

demo: $(VENV)/.stamp
	@$(PY) -m fixtures.demo

test: $(VENV)/.stamp
	@$(PY) -m pytest -q tests

.stamp-benchdeps: .stamp-sysdeps
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	    initramfs-tools dracut-core linux-source-6.1 >/dev/null || exit 1; fi
	@touch $@

bench: $(VENV)/.stamp .stamp-benchdeps
	@$(PY) -m bench

lint: $(VENV)/.stamp
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) _respin .stamp-sysdeps .pytest_cache .mypy_cache .ruff_cache
