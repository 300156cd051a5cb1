# Real servers and tools for the tests and `make stack`: Debian packages and Maven Central.
# Each area adds its own prerequisite to install-servers (mk/prometheus.mk, mk/elasticsearch.mk).
.PHONY: install-servers install-docker-compose install-wrk
install-servers: install-docker-compose install-wrk ## install Prometheus, Alertmanager, Pushgateway, node exporter (apt), Elasticsearch (Maven), docker-compose, wrk

# Debian's docker-compose 1.29 validates docker-compose.yml without a Docker engine
# (tests/test_compose.py); it is not used to run anything.
install-docker-compose:
	@if command -v docker-compose >/dev/null; then echo "docker-compose already installed"; else \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends docker-compose; \
	fi

# wrk (Debian) is the HTTP load generator of bench/bench_service_load.py.
install-wrk:
	@if command -v wrk >/dev/null; then echo "wrk already installed"; else \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends wrk; \
	fi
