"""The test Elasticsearch itself: it answers, and a restart keeps its port and its data."""

from __future__ import annotations

import pytest
from elasticsearch import ConnectionError as EsConnectionError
from elasticsearch import Elasticsearch

from tests.integration.es_server import ElasticsearchServer, es_restartable, es_server  # noqa: F401

pytestmark = pytest.mark.integration


def test_shared_node_is_elasticsearch_8(es_server: ElasticsearchServer) -> None:  # noqa: F811
    client = Elasticsearch(es_server.url)
    health = client.cluster.health(wait_for_status="yellow", timeout="5s")
    assert health["status"] in ("yellow", "green")
    nodes = client.nodes.info()
    versions = {node["version"] for node in nodes["nodes"].values()}
    assert versions == {"8.14.1"}


def test_restart_keeps_port_and_data(es_restartable: ElasticsearchServer) -> None:  # noqa: F811
    url = es_restartable.url
    client = Elasticsearch(url)
    client.index(index="survivor", id="1", document={"n": 1}, refresh=True)

    es_restartable.stop()
    assert not es_restartable.is_running()
    with pytest.raises(EsConnectionError):  # refused while it is down
        Elasticsearch(url, request_timeout=2, max_retries=0).count(index="survivor")

    es_restartable.start()
    assert es_restartable.url == url
    assert Elasticsearch(url).get(index="survivor", id="1")["_source"] == {"n": 1}
