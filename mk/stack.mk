# The stack: generated Grafana dashboards, docker-compose (`up`/`down`), the demo, and the same
# stack as local processes without Docker (`stack`/`stack-down`, used by the end-to-end test).
.PHONY: generate-dashboards up down stack stack-down demo

generate: generate-dashboards

generate-dashboards: ## regenerate grafana/dashboards/*.json from the *.dashboard.py beside them
	$(PY) grafana/generate.py

# `.env` holds the passwords; it is created once from .env.example with random values for every
# uncommented *PASSWORD= line (commented optional ones stay commented) and is never committed.
.env:
	@umask 077; $(PYTHON) -c 'import re, secrets, sys; \
	  text = open(".env.example", encoding="utf-8").read(); \
	  sys.stdout.write(re.sub(r"(?m)^([A-Z_]*PASSWORD)=.*$$", \
	    lambda m: m.group(1) + "=" + secrets.token_urlsafe(24), text))' > .env
	@echo "wrote .env with random passwords (Grafana: admin / see GRAFANA_ADMIN_PASSWORD)"

# Compose: the Docker CLI plugin (`docker compose`) when it answers, else a standalone
# `docker-compose` (Debian 12 packages v1.29, which reads this file too). Checked before use, so
# that a machine without either gets one line saying what to install, not docker's own
# `unknown shorthand flag: 'd' in -d`.
DOCKER ?= docker
DOCKER_COMPOSE ?= docker-compose
# Found on first use, then kept (the eval), so targets that do not use it never ask Docker.
COMPOSE = $(eval COMPOSE := $(shell if $(DOCKER) compose version >/dev/null 2>&1; then \
  echo '$(DOCKER) compose'; elif command -v $(DOCKER_COMPOSE) >/dev/null 2>&1; then \
  echo '$(DOCKER_COMPOSE)'; fi))$(COMPOSE)

.PHONY: compose-available
compose-available:
	@if [ -z "$(COMPOSE)" ]; then \
	  echo "make: Docker Compose is missing: neither '$(DOCKER) compose' nor '$(DOCKER_COMPOSE)'" \
	    "works here. Install the Compose plugin (Docker's apt repository: apt-get install" \
	    "docker-compose-plugin; Debian's own: apt-get install docker-compose), or run" \
	    "'make stack' for the same stack as local processes without Docker." >&2; \
	  exit 1; fi

up: compose-available .env ## start the whole stack with Docker (writes .env with random passwords when missing)
	$(COMPOSE) up -d

down: compose-available ## stop the Docker stack (keeps the named volumes; `docker compose down -v` drops them)
	$(COMPOSE) down

demo: ## run the demo model service alone on 127.0.0.1:8000 (exporter + shipper + /metrics)
	$(VENV)/bin/mlmon demo

# `make stack`: the same stack as local processes (no Docker), with the same demo timing profile
# as docker-compose (prometheus/demo/prometheus.yml). Elasticsearch comes from the Maven-fetched
# distribution (`es-start`, mk/elasticsearch.mk). STACK_FLAGS passes options to stack/local.py,
# e.g. STACK_FLAGS='--healthy-s 60' for a shorter healthy phase, '--port-base 19000' when the
# compose ports are taken, or '--discard-spool' to drop the records a previous run left in the
# demo's spool (kept and delivered by default; `make stack` says which).
STACK_DIR ?= .run/stack
STACK_FLAGS ?=

stack: es-start ## run the stack as local processes (Prometheus, Alertmanager, ES, demo, traffic, sink)
	$(PY) stack/local.py up --run-dir $(STACK_DIR) --es-url http://127.0.0.1:$(ES_PORT) $(STACK_FLAGS)

stack-down: ## stop what `make stack` started (and the Elasticsearch of es-start), only if provably those processes
	$(PY) stack/local.py down --run-dir $(STACK_DIR)
	$(MAKE) --no-print-directory es-stop
