# Everything a fresh Debian machine needs, then the gateway or the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages the run or the tests need (none yet for the control plane).
SYSTEM_PACKAGES :=

.PHONY: run test lint system-deps venv clean

run: venv
	$(BIN)/gateway serve

test: venv
	$(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check gateway trunks tests
	$(BIN)/ruff format --check gateway trunks tests

system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

venv: system-deps $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) build *.egg-info
