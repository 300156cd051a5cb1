#!/usr/bin/env bash
# Run one single-node Elasticsearch 8.14 in the foreground, on 127.0.0.1 only.
#
#   stack/elasticsearch/elasticsearch.sh BASE_DIR HTTP_PORT TRANSPORT_PORT
#
# BASE_DIR holds conf/, data/, logs/ and tmp/; running again with the same BASE_DIR and ports
# restarts the same node on the same data. Environment: MLMON_ES_HOME (default: the
# distribution unpacked by `make install-elasticsearch`), MLMON_ES_HEAP (default 512m: the
# machines have 2 shared cores), MLMON_ES_SETTINGS (extra elasticsearch.yml lines, e.g. a small
# `http.max_content_length` for a test), ES_JAVA_HOME / JAVA_HOME.
# Elasticsearch refuses to run as root, so as root it runs as `nobody` (setpriv, util-linux).
set -euo pipefail

if [[ $# -ne 3 ]]; then
  echo "usage: $0 BASE_DIR HTTP_PORT TRANSPORT_PORT" >&2
  exit 2
fi
here="$(cd "$(dirname "$0")" && pwd)"
base="$(mkdir -p "$1" && cd "$1" && pwd)"
http_port="$2"
transport_port="$3"
es_home="${MLMON_ES_HOME:-$here/dist/elasticsearch-8.14.1}"
heap="${MLMON_ES_HEAP:-512m}"

if [[ ! -x "$es_home/bin/elasticsearch" ]]; then
  echo "Elasticsearch is not installed in $es_home; run 'make install-elasticsearch'" >&2
  exit 3
fi
if [[ -z "${ES_JAVA_HOME:-}" ]]; then
  if [[ -n "${JAVA_HOME:-}" ]]; then
    ES_JAVA_HOME="$JAVA_HOME"
  else
    ES_JAVA_HOME="$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")"
  fi
fi
export ES_JAVA_HOME

mkdir -p "$base/conf" "$base/data" "$base/logs" "$base/tmp"
cp "$es_home/config/log4j2.properties" "$base/conf/"
# No heap dumps or GC logs: a test node must not fill the disk.
cat > "$base/conf/jvm.options" <<OPTIONS
-XX:+UseG1GC
-Djava.io.tmpdir=\${ES_TMPDIR}
-XX:+ExitOnOutOfMemoryError
-Xms$heap
-Xmx$heap
OPTIONS
# Security off and loopback only: this node is for tests and the local stack.
# The disk threshold is off because a shared machine's disk may be above 90 % full, which
# would otherwise make every index read-only in the middle of a test.
cat > "$base/conf/elasticsearch.yml" <<SETTINGS
cluster.name: mlmon
node.name: mlmon-es
path.data: $base/data
path.logs: $base/logs
network.host: 127.0.0.1
http.port: $http_port
transport.port: $transport_port
discovery.type: single-node
xpack.security.enabled: false
cluster.routing.allocation.disk.threshold_enabled: false
action.destructive_requires_name: false
${MLMON_ES_SETTINGS:-}
SETTINGS

export ES_PATH_CONF="$base/conf" ES_TMPDIR="$base/tmp"
if [[ "$(id -u)" == 0 ]]; then
  # A checkout that `nobody` cannot read (e.g. under /root) cannot hold the running node's
  # binaries: run a copy under the temp dir instead, made once and renamed into place whole.
  if ! setpriv --reuid=nobody --regid=nogroup --clear-groups -- test -x "$es_home/bin/elasticsearch"; then
    copy="${TMPDIR:-/tmp}/mlmon-elasticsearch-8.14.1"
    if [[ ! -x "$copy/bin/elasticsearch" ]]; then
      partial="$(mktemp -d "$copy.partial.XXXXXX")"
      cp -a "$es_home/." "$partial/"
      chmod 755 "$partial"
      mv -T "$partial" "$copy" 2>/dev/null || rm -rf "$partial"  # another start won the race
    fi
    es_home="$copy"
  fi
  chown -R nobody:nogroup "$base"
  exec setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$es_home/bin/elasticsearch" -q
fi
exec "$es_home/bin/elasticsearch" -q
