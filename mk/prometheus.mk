# Prometheus rules, alerts and Alertmanager: install the servers, generate and check the rules.
.PHONY: install-prometheus generate-rules check-rules

install-servers: install-prometheus
generate: generate-rules

# The Pushgateway receives the counts of short-lived jobs (batch scoring, the outcomes CLI,
# training runs); the node exporter watches the host the stack runs on.
install-prometheus: ## install Prometheus, promtool, Alertmanager, amtool, Pushgateway, node exporter (Debian packages)
	@if command -v prometheus >/dev/null && command -v promtool >/dev/null && \
	    command -v prometheus-alertmanager >/dev/null && command -v amtool >/dev/null && \
	    command -v prometheus-pushgateway >/dev/null && \
	    command -v prometheus-node-exporter >/dev/null; then \
	  echo "prometheus, alertmanager, pushgateway and node exporter already installed"; \
	else \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  PACKAGES="prometheus prometheus-alertmanager prometheus-pushgateway prometheus-node-exporter"; \
	  NEW=$$(for p in $$PACKAGES; do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | \
	    grep -q 'ok installed' || echo $$p; done); \
	  $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$PACKAGES && \
	  if [ -d /run/systemd/system ] && [ -n "$$NEW" ]; then \
	    echo "stopping and disabling the services of the packages just installed ($$NEW):" \
	      "they listen on all interfaces, on the ports the stack and the tests use"; \
	    $$SUDO systemctl disable --now $$NEW; \
	  fi; \
	fi

generate-rules: ## regenerate recording/alert rules, alertmanager.yml and the promtool test files
	$(PY) -m mlmon.alerting.generate
	@# the promtool test files are built by Python from the same names and config
	@for cases in prometheus/tests/*_cases.py; do $(PY) $$cases || exit 1; done

check-rules: ## promtool/amtool checks and the promtool unit tests of every rule and alert
	promtool check config prometheus/prometheus.yml
	promtool check config prometheus/demo/prometheus.yml
	amtool check-config alerting/alertmanager.yml
	promtool test rules prometheus/tests/*_test.yml
