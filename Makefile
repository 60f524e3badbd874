# Hirfa: `make run` starts the hub on its embedded default; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test demo messages bench-chat bench-sfu clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/hirfa serve --host $(HOST) --port $(PORT)

demo: install
	$(VENV)/bin/hirfa demo

test: install
	HIRFA_FAST_PASSWORD_HASHER=1 $(PY) -m pytest $(PYTEST_ARGS)

messages: install
	$(PY) scripts/compile_messages.py

bench-chat: install
	$(PY) bench/chat_fanout.py

bench-sfu: install
	$(PY) bench/sfu.py

clean:
	rm -rf $(VENV) build *.egg-info test-artifacts
