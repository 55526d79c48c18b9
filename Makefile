# respin: every target sets up what it needs on a fresh machine.
#   make demo   run the kernel pipeline on the built-in fixture (no network needed)
#   make test   install what the tests need, then run them
#   make check  lint and the quick tests (no package built, no root, under a minute)
#   make bench  benchmarks against the tools a user would use instead
#   make lint   ruff and mypy

SHELL := /bin/bash
# The venv is made from the system python so the PyPI `rpm` shim finds the
# system rpm bindings built for that very interpreter.
PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
# Editable installs through setuptools' own finder: respin.pipeline and respin.stages are
# the top-level pipeline/ and stages/ folders, each file with one import name and one path
# (a path entry for the checkout would make `import pipeline` a second copy).
EDITABLE :=
# mypy cannot follow that finder: it reads the package through a tree of links made
# under build/ for it alone.
TYPING := build/typing/respin
SUDO   := $(shell test "$$(id -u)" = 0 || echo sudo -n)

# What `make demo` needs: rpmbuild and its bindings, the tools the fixture specs run.
APT_DEMO := rpm python3-rpm python3-venv cpio patch diffutils gzip xz-utils bzip2 gcc make git perl gawk
DNF_DEMO := rpm-build python3-rpm cpio patch diffutils gzip xz bzip2 gcc make git perl gawk
# What the tests add: the archive tools they cross-check with, network namespaces, the
# daemons they apply files with, repositories, a kernel and qemu to boot, the koji client's
# build dependencies, and a real Linux tree with what compiling it needs.
APT_TEST := libarchive-tools iproute2 iputils-ping nftables zstd lz4 lzop liblzo2-dev python3-dev \
            createrepo-c dnf dnf-plugins-core libkrb5-dev openssl systemd dbus \
            qemu-system-x86 linux-image-amd64 busybox-static ovmf sbsigntool faketime gnupg
DNF_TEST := bsdtar iproute iputils nftables zstd lz4 lzop lzo-devel python3-devel createrepo_c \
            dnf-plugins-core krb5-devel openssl systemd-networkd dbus-daemon \
            qemu-system-x86 kernel-core busybox edk2-ovmf sbsigntools libfaketime gnupg2
# The real-kernel tests: Debian's Linux 6.1 tree (Source0 of the real-kernel fixture),
# what compiling it needs, and the compile cache.
APT_KERNEL := linux-source-6.1 flex bison bc libelf-dev libssl-dev ccache
DNF_KERNEL := flex bison bc elfutils-libelf-devel openssl-devel ccache
# Packages that ship a service their install would enable and start on this host: on a
# host booted with systemd they are installed only when asked (INSTALL_SERVICES=1), so
# `make test` never changes how the host's own network is run; the tests that need
# them say why they skip.
APT_SERVICES := network-manager
DNF_SERVICES := NetworkManager
INSTALL_SERVICES ?= $(shell test -d /run/systemd/system || echo 1)

.PHONY: all demo test check bench lint sysdeps venv install uninstall clean

all: test

# install-pkgs STAMP APT-LIST DNF-LIST: install what is missing (root only), then touch STAMP.
define install-pkgs
	@if command -v apt-get >/dev/null 2>&1; then \
	  missing=$$(for p in $(2); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ]; then \
	      echo "installing system packages:" $$missing; \
	      { test -n "$$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -print -quit)" || apt-get update -q >/dev/null; } && \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null \
	        || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null; } \
	        || { echo "apt-get install failed"; exit 1; }; \
	    else echo "not root: cannot install" $$missing "(what needs them skips)"; fi; \
	  fi; \
	elif command -v dnf >/dev/null 2>&1; then \
	  missing=$$(for p in $(3); do rpm -q --whatprovides $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ]; then echo "installing system packages:" $$missing; dnf install -y -q $$missing || exit 1; \
	    else echo "not root: cannot install" $$missing "(what needs them skips)"; fi; \
	  fi; \
	fi
	@touch $(1)
endef

.stamp-demodeps:
	$(call install-pkgs,$@,$(APT_DEMO),$(DNF_DEMO))

.stamp-testdeps: .stamp-demodeps
	$(call install-pkgs,$@,$(APT_TEST) $(APT_KERNEL) $(if $(INSTALL_SERVICES),$(APT_SERVICES)),$(DNF_TEST) $(DNF_KERNEL) $(if $(INSTALL_SERVICES),$(DNF_SERVICES)))
	@if [ -z "$(INSTALL_SERVICES)" ]; then \
	  echo "not installed: $(APT_SERVICES) (its service would start on this systemd host;" \
	       "make test INSTALL_SERVICES=1 installs it, and its daemon test then runs)"; fi

sysdeps: .stamp-testdeps

# The demo's venv: respin and what it runs with, nothing else.
$(VENV)/.stamp: pyproject.toml .stamp-demodeps
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -e . $(EDITABLE)
	@# Earlier Makefiles installed the tests' example plugin here; the tests now bring their own.
	@$(PY) -m pip uninstall -q -y respin-example-plugin >/dev/null 2>&1 || true
	@touch $@

# The tests' extras: pytest, the linters, and the optional codecs and clients.
$(VENV)/.stamp-test: $(VENV)/.stamp .stamp-testdeps
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]' $(EDITABLE)
	@# python-lzo builds from source against liblzo2; without it lzo images are refused in one line.
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[lzo]' $(EDITABLE) 2>/dev/null \
	  || echo "python-lzo could not be built: lzo-compressed initrds will be refused"
	@# The koji client (its gssapi dependency builds against libkrb5); without it the koji backend says so.
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[koji]' $(EDITABLE) 2>/dev/null \
	  || echo "the koji client could not be installed: the koji backend and its tests are unavailable"
	@touch $@

venv: $(VENV)/.stamp-test

demo: $(VENV)/.stamp
	@$(PY) -m fixtures.demo

test: $(VENV)/.stamp-test
	@$(VENV)/bin/pytest -q tests

# What a change is checked with before `make test`: tests marked neither slow nor root.
check: lint
	@$(VENV)/bin/pytest -q -m "not slow and not root" tests

# respin on PATH: its own venv under $(PREFIX)/share/respin (a regular, non-editable
# install of this checkout) and a link in $(PREFIX)/bin.  `make uninstall` removes both.
PREFIX ?= $(HOME)/.local
install: .stamp-demodeps
	@test -x $(PREFIX)/share/respin/venv/bin/python || $(PYTHON) -m venv $(PREFIX)/share/respin/venv
	@$(PREFIX)/share/respin/venv/bin/python -m pip install -q --disable-pip-version-check .
	@mkdir -p $(PREFIX)/bin
	@ln -sfn $(PREFIX)/share/respin/venv/bin/respin $(PREFIX)/bin/respin
	@echo "installed: $(PREFIX)/bin/respin ($$($(PREFIX)/bin/respin --version))"
	@case ":$$PATH:" in *":$(PREFIX)/bin:"*) ;; *) echo "note: $(PREFIX)/bin is not on PATH";; esac

uninstall:
	rm -rf $(PREFIX)/share/respin
	@if [ -L $(PREFIX)/bin/respin ]; then rm -f $(PREFIX)/bin/respin; fi

.stamp-benchdeps: .stamp-testdeps
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	    initramfs-tools dracut-core >/dev/null || exit 1; fi
	@touch $@

bench: $(VENV)/.stamp-test .stamp-benchdeps
	@$(PY) -m bench

# The tests too, strict but for the untyped tools they drive; each folder's helpers are
# found as the tests import them, and the real-kernel folder (its own conftest) apart.
TEST_MYPY := --strict --no-warn-unused-ignores --ignore-missing-imports --explicit-package-bases

lint: $(VENV)/.stamp-test $(TYPING)
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/mypy
	@MYPYPATH=build/typing:examples/plugin:tests:tests/initrd:. $(VENV)/bin/mypy $(TEST_MYPY) \
		--exclude tests/kernel/real tests
	@MYPYPATH=build/typing:examples/plugin:tests:tests/kernel/real:. $(VENV)/bin/mypy $(TEST_MYPY) \
		tests/kernel/real

# The package as mypy sees it: respin/ with pipeline/ and stages/ inside, as links.
$(TYPING):
	@mkdir -p $@
	@for f in __init__.py __main__.py py.typed; do ln -sfn ../../../respin/$$f $@/$$f; done
	@ln -sfn ../../../pipeline $@/pipeline
	@ln -sfn ../../../stages $@/stages

clean:
	rm -rf $(VENV) build _respin .stamp-demodeps .stamp-testdeps .stamp-benchdeps .pytest_cache .mypy_cache .ruff_cache
