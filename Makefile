# Hirfa: `make run` starts the hub on its embedded default; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test lint demo messages makemessages bench-chat bench-sfu bench-netlab deploy-check clean

$(VENV)/.installed: pyproject.toml
	@echo "Installing Hirfa into $(VENV) (the first time takes a few minutes)..."
	@$(PYTHON) -m venv $(VENV)
	@echo "  1/2 pip"
	@$(VENV)/bin/pip install --quiet --upgrade pip
	@echo "  2/2 Hirfa and its packages (Django, Channels, aiortc, ...)"
	@# setuptools >= 80 warns on every editable install of a flat layout ("be careful with folders
	@# ... with the same name"); it says nothing about this project, so the first run stays quiet.
	@PYTHONWARNINGS='ignore:Editable installation' $(VENV)/bin/pip install --quiet -e '.[test]'
	@touch $@
	@echo "Installed. Next: make run (the hub on http://$(HOST):$(PORT)/; PORT= and HOST= change it), make demo, make test"

install: $(VENV)/.installed

run: install messages
	@$(VENV)/bin/hirfa serve --host $(HOST) --port $(PORT)

demo: install messages
	$(VENV)/bin/hirfa demo

# Two workers (pytest-xdist; tests/parallel.py keeps them apart): most tests wait on sockets,
# browsers and processes, so two share the machine's cores. PYTEST_WORKERS=0 runs one process.
PYTEST_WORKERS ?= 2
test: install messages
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# Lint, types and the import contract (.importlinter); CI runs this before the tests.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

# The .mo files are built here, not committed: the .po files are the source
# (no locations, sorted by msgid, so parallel changes merge line by line).
messages: install
	@$(PY) scripts/compile_messages.py --quiet

makemessages: install
	$(PY) manage.py makemessages --no-location --no-wrap -l ar -l fr -l en -l kab
	for po in */locale/*/LC_MESSAGES/django.po; do msgcat --no-location --sort-output --no-wrap -o $$po $$po; done
	$(PY) scripts/compile_messages.py

# The production topology on loopback from deploy/ (nginx TLS, 2 hubs, 2 SFU workers, the job
# worker, coturn, Redis primary/replica/Sentinel, PostgreSQL), checked through nginx; prints figures.
DEPLOY_CHECK_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres
deploy-check: install messages
	DATABASE_URL=$${DATABASE_URL:-$(DEPLOY_CHECK_DATABASE_URL)} HIRFA_DEPLOY_CHECK=full \
	  $(PY) -m pytest tests/e2e/test_deploy_check.py -s -q -p no:cacheprovider

bench-chat: install
	$(PY) bench/chat_fanout.py

bench-sfu: install
	$(PY) bench/sfu.py

bench-netlab: install
	$(PY) bench/netlab.py

clean:
	rm -rf $(VENV) build *.egg-info test-artifacts
