# The stack: generated Grafana dashboards, docker-compose (`up`/`down`), the demo, and the same
# stack as local processes without Docker (`stack`/`stack-down`, used by the end-to-end test).
.PHONY: generate-dashboards up down stack stack-down demo

generate: generate-dashboards

generate-dashboards: ## regenerate grafana/dashboards/*.json from the *.dashboard.py beside them
	$(PY) grafana/generate.py

# `.env` holds the passwords; it is created once with random values and never committed.
.env:
	@umask 077; { \
	  sed -n '/^#/p' .env.example; \
	  for v in $$(sed -n 's/^\([A-Z_]*PASSWORD\)=.*/\1/p' .env.example); do \
	    echo "$$v=$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(24))')"; done; \
	  grep -v -e '^#' -e 'PASSWORD=' -e '^$$' .env.example; \
	} > .env
	@echo "wrote .env with random passwords (Grafana: admin / see GRAFANA_ADMIN_PASSWORD)"

up: .env ## start the whole stack with Docker (writes .env with random passwords when missing)
	docker compose up -d

down: ## stop the Docker stack (keeps the named volumes; `docker compose down -v` drops them)
	docker compose down

demo: ## run the demo model service alone on 127.0.0.1:8000 (exporter + shipper + /metrics)
	$(VENV)/bin/mlmon demo

# `make stack`: the same stack as local processes (no Docker). Elasticsearch comes from the
# Maven runner (`make es-start`, mk/elasticsearch.mk); STACK_FLAGS passes options to
# stack/local.py, e.g. STACK_FLAGS='--fast-alerts 1m --healthy-s 120' for a quick demo.
STACK_DIR ?= .run/stack
STACK_ES_URL ?= http://127.0.0.1:9200
STACK_FLAGS ?=

stack: ## run the stack as local processes (Prometheus, Alertmanager, ES, demo, traffic, sink)
	@if $(MAKE) -n es-start >/dev/null 2>&1; then $(MAKE) --no-print-directory es-start; fi
	$(PY) stack/local.py up --run-dir $(STACK_DIR) --es-url $(STACK_ES_URL) $(STACK_FLAGS)

stack-down: ## stop what `make stack` started
	$(PY) stack/local.py down --run-dir $(STACK_DIR)
	@if $(MAKE) -n es-stop >/dev/null 2>&1; then $(MAKE) --no-print-directory es-stop; fi
