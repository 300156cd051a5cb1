# Elasticsearch 8.14.1 without Docker: Elastic's integration-test distribution from Maven Central,
# unpacked into stack/elasticsearch/dist/ so that neither tests nor `make es-start` download.
.PHONY: install-elasticsearch es-start es-stop

ES_DIR := stack/elasticsearch
ES_HOME := $(ES_DIR)/dist/elasticsearch-8.14.1
ES_RUN_DIR ?= .run/elasticsearch
ES_PORT ?= 9200
ES_TRANSPORT_PORT ?= 9300

install-servers: install-elasticsearch

install-elasticsearch: $(ES_HOME)/bin/elasticsearch ## fetch Elasticsearch 8.14.1 with Maven (once)

$(ES_HOME)/bin/elasticsearch: $(ES_DIR)/pom.xml
	mvn -q -B -f $(ES_DIR)/pom.xml dependency:unpack-dependencies
	@touch $@

# The pid file records what proves the process is ours (stack/processes.py: boot id and kernel
# start time with the pid), so es-stop never signals a process that merely inherited the pid.
ES_PROCESSES := $(PYTHON) stack/processes.py

es-start: install-elasticsearch ## start a background Elasticsearch on 127.0.0.1:9200 (ES_PORT=... to change; pid in .run/)
	@mkdir -p $(ES_RUN_DIR)
	@if $(ES_PROCESSES) alive $(ES_RUN_DIR)/es.pid; then \
	  echo "Elasticsearch already running ($(ES_RUN_DIR)/es.pid)"; exit 0; fi; \
	$(ES_PROCESSES) stop $(ES_RUN_DIR)/es.pid > /dev/null || exit 1; \
	setsid $(ES_DIR)/elasticsearch.sh $(ES_RUN_DIR) $(ES_PORT) $(ES_TRANSPORT_PORT) \
	  > $(ES_RUN_DIR)/output.log 2>&1 < /dev/null & \
	$(ES_PROCESSES) record $(ES_RUN_DIR)/es.pid elasticsearch $$! || exit 1; \
	for i in $$(seq 1 360); do \
	  if curl -sf 'http://127.0.0.1:$(ES_PORT)/_cluster/health?wait_for_status=yellow&timeout=1s' \
	     > /dev/null; then echo "Elasticsearch ready on http://127.0.0.1:$(ES_PORT)"; exit 0; fi; \
	  $(ES_PROCESSES) alive $(ES_RUN_DIR)/es.pid || break; sleep 0.5; done; \
	echo "Elasticsearch did not start; see $(ES_RUN_DIR)/output.log and $(ES_RUN_DIR)/logs" >&2; \
	tail -n 20 $(ES_RUN_DIR)/output.log >&2; exit 1

es-stop: ## stop the background Elasticsearch started by es-start (only if it is provably that one)
	@$(ES_PROCESSES) stop $(ES_RUN_DIR)/es.pid 60

# Kibana saved objects for the example profile (committed; `make check-generated` diffs them).
.PHONY: generate-kibana
generate: generate-kibana

generate-kibana: ## regenerate kibana/saved_objects.ndjson from kibana/example_profile.json
	$(PY) -m mlmon.cli kibana-objects --profile kibana/example_profile.json \
	  -o kibana/saved_objects.ndjson
