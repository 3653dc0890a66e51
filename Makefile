# socialdesk — `make run` starts the whole stack locally, `make test` runs the tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HERE := $(dir $(abspath $(lastword $(MAKEFILE_LIST))))

.PHONY: run demo test lint unit integration bench fuzz soak redrive forget zendesk-setup report eval classify check-rules bytecode deploy clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "pip>=24,<26.3"  # chalice 1.34 packages with pip and refuses 26.3+
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

CHECKOV_VENV := .run/checkov-venv
CHECKOV := $(CHECKOV_VENV)/bin/checkov

# checkov pins boto3==1.35.49 and packaging<24: it cannot share .venv.
$(CHECKOV): requirements-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements-checkov.txt
	touch $(CHECKOV)

run: $(STAMP)
	$(PY) -m local.run

demo: $(STAMP)
	$(PY) -m local.demo

# The browser tests need Chromium: found, or Debian's installed (tools/ensure_chromium.sh), or one line saying what to do.
# ruff (lint + format check) and mypy, configured in pyproject.toml; part of `make test`.
lint: $(STAMP)
	$(PY) -m ruff check app.py chalicelib
	$(PY) -m ruff format --check app.py chalicelib
	$(PY) -m mypy

test: $(STAMP) $(CHECKOV) lint
	chromium="$$(tools/ensure_chromium.sh)" && CHROMIUM_PATH="$$chromium" CHECKOV=$(abspath $(CHECKOV)) $(PY) -m pytest -q tests

unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

integration: $(STAMP) $(CHECKOV)
	CHECKOV=$(abspath $(CHECKOV)) $(PY) -m pytest -q tests/integration

bench: $(STAMP)
	$(PY) -m bench.run

# Language and sentiment detectors on the triage test split (never trained on); exits 1 below target.
eval: $(STAMP)
	$(PY) -m tools.eval_triage

# The triage rules file(s): TRIAGE_RULES_PATH (default chalicelib/rules/triage.json), or RULES="a.json b.json".
# Exit 1 with file:line: place: problem for the first mistake in each.
check-rules: $(STAMP)
	@$(PY) -m chalicelib.triage.rules $(RULES)

# JSON lines {"id", "text"} on stdin -> {"id", "language", "sentiment"} on stdout (nothing else).
classify: $(STAMP)
	@$(PY) -m tools.classify

# Hostile input against every route: >= 10,000 inputs (a short run is part of `make test`).
fuzz: $(STAMP)
	mkdir -p .run
	FUZZ_PROFILE=long FUZZ_REPORT_FILE=.run/fuzz-report.json $(PY) -m pytest -q -p no:cacheprovider tests/fuzz

# >= 5,000 deliveries under faults, then: nothing lost, nothing doubled, drain time (a short run is part of `make test`).
soak: $(STAMP)
	mkdir -p .run
	$(PY) -m soak.run --deliveries $(or $(DELIVERIES),5000) --duplicates 0.2 --big-conversation $(or $(BIG),10500) --json .run/soak-report.json

# The bytecode the packages carry (chalicelib's in place, the layer's packages' in vendor/): Lambda
# cannot write bytecode, so without it every cold start compiles each module it imports.
# infra/bytecode.py, docs/deploy.md.
bytecode:
	$(PY) $(HERE)infra/bytecode.py .

# make deploy STAGE=dev|prod: the bytecode, then chalice deploy.
deploy: $(STAMP) bytecode
	$(VENV)/bin/chalice deploy --stage $(or $(STAGE),$(error set STAGE=dev or STAGE=prod))

# Replays messages parked in the dead-letter queue. Locally (no STAGE) against the
# running `make run` stack; with STAGE=dev|prod it invokes the deployed function.
SCHEDULED_EVENT := {"version":"0","id":"manual-redrive","detail-type":"Scheduled Event","source":"aws.events","account":"","time":"1970-01-01T00:00:00Z","region":"","resources":[],"detail":{}}
redrive: $(STAMP)
ifdef STAGE
	aws lambda invoke --function-name socialdesk-$(STAGE)-redrive_parked --cli-binary-format raw-in-base64-out \
		--payload '$(SCHEDULED_EVENT)' /dev/stdout
else
	$(PY) -m local.redrive
endif

# Erases a person by platform identity: make forget PLATFORM=x AUTHOR_ID=123 [SCAN=1] (needs TABLE_NAME).
forget: $(STAMP)
	$(PY) -m chalicelib.privacy.deletion forget --platform $(PLATFORM) --author-id $(AUTHOR_ID) $(if $(SCAN),--scan)

# Creates or updates the Zendesk webhook and triggers of agent replies (idempotent).
# Needs ZENDESK_URL, ZENDESK_EMAIL, ZENDESK_API_TOKEN and PUBLIC_BASE_URL; with none set, the running `make run`.
zendesk-setup: $(STAMP)
	$(PY) -m local.zendesk_setup $(ARGS)

# The response-time report, one HTML file: the running `make run` stack's table, or TABLE_NAME with AWS credentials.
# make report [REPORT_LANGUAGE=es] [OUT=path] [ARGS="--days 30 --sla x:public=30m"]
report: $(STAMP)
	$(PY) -m chalicelib.reporting --out $(or $(OUT),.run/report.html) $(if $(TABLE_NAME),,--local) $(ARGS)

clean:
	rm -rf $(VENV) .run .pytest_cache
