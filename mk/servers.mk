# Real servers for the tests and `make stack`: installed from Debian packages and Maven Central.
.PHONY: install-servers
install-servers: ## install Prometheus, Alertmanager (apt) and Elasticsearch (Maven) for tests
