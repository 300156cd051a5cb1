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

# `make stack`: the same stack as local processes (no Docker), with the same demo timing profile
# as docker-compose (prometheus/demo/prometheus.yml). Elasticsearch comes from the Maven-fetched
# distribution (`es-start`, mk/elasticsearch.mk). STACK_FLAGS passes options to stack/local.py,
# e.g. STACK_FLAGS='--healthy-s 60' for a shorter healthy phase, or '--port-base 19000' when the
# compose ports are taken.
STACK_DIR ?= .run/stack
STACK_FLAGS ?=

stack: es-start ## run the stack as local processes (Prometheus, Alertmanager, ES, demo, traffic, sink)
	$(PY) stack/local.py up --run-dir $(STACK_DIR) --es-url http://127.0.0.1:$(ES_PORT) $(STACK_FLAGS)

stack-down: ## stop what `make stack` started (and the Elasticsearch of es-start)
	$(PY) stack/local.py down --run-dir $(STACK_DIR)
	$(MAKE) --no-print-directory es-stop
