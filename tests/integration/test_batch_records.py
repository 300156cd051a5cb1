"""`mlmon batch --es-url`: every scored row reaches a real Elasticsearch as a prediction record.

Same path as a service (PredictionLogger -> Shipper -> bulk), same record schema, `event.id`
from the key column, so the Kibana red-flag searches find a batch's rows as they find a
service's; the counts pushed to the real Pushgateway are the same as without records.
A second run of the same file indexes nothing twice (the ids exist already).
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from elasticsearch import Elasticsearch

import mlmon.names as N
from mlmon.cli import main
from mlmon.exporter.profile import Profile
from mlmon.log_shipper.es_assets import install
from mlmon.log_shipper.kibana import red_flag_searches
from tests.integration import prom_servers
from tests.integration.es_server import es_server, es_url  # noqa: F401
from tests.integration.prom_servers import Server
from tests.profiles import sample_profile_dict

pushgateway_factory = prom_servers.pushgateway_factory

pytestmark = pytest.mark.integration

ROWS = 1500


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    age = rng.normal(40, 10, ROWS).round(1)
    age[::100] = 150.0  # out of range: 15 rows
    city = rng.choice(["paris", "rome", "berlin"], ROWS).astype(object)
    city[5::50] = "oslo"  # never seen: 30 rows
    return pd.DataFrame({
        "id": [f"batch-{i}" for i in range(ROWS)],
        "age": age,
        "income": rng.normal(2000, 400, ROWS).round(0),
        "city": city,
        "review": rng.choice(["good service", "the bad"], ROWS),
        "pred": rng.normal(0, 1, ROWS),
    })


def _observations(pgw: Server, job: str) -> float:
    with urllib.request.urlopen(f"{pgw.url}/metrics", timeout=5) as response:  # noqa: S310
        for line in response.read().decode().splitlines():
            if line.startswith(N.OBSERVATIONS.sample + "{") and f'batch_job="{job}"' in line:
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {N.OBSERVATIONS.sample} pushed for {job}")


def test_rows_become_records_that_the_red_flag_searches_find(
        tmp_path: Path, es_url: str, pushgateway_factory: Any,  # noqa: F811
        capsys: Any) -> None:
    model = f"b{uuid.uuid4().hex[:10]}"
    data = sample_profile_dict()
    data["model"]["name"] = model
    profile = Profile.from_dict(data)
    profile_path = tmp_path / "profile.json"
    profile_path.write_text(json.dumps(data), encoding="utf-8")
    client = Elasticsearch(es_url)
    install(client, profile)
    frame = _frame()
    path = tmp_path / "scored.parquet"
    frame.to_parquet(path)
    pgw: Server = pushgateway_factory()
    args = ["batch", str(path), "--profile", str(profile_path), "--prediction-column", "pred",
            "--pushgateway", pgw.url, "--job", "nightly", "--es-url", es_url,
            "--id-column", "id", "--spool-dir", str(tmp_path / "spool"), "--chunk-rows", "400"]
    assert main(args) == 0, capsys.readouterr().err
    index = f"mlmon-predictions-{model}"
    client.indices.refresh(index=index)
    assert client.count(index=index)["count"] == ROWS
    # a data stream has no GET by id: search the id
    (hit,) = client.search(index=index, query={"ids": {"values": ["batch-0"]}})["hits"]["hits"]
    doc = hit["_source"]
    assert doc["service"]["name"] == "nightly" and doc["model"]["name"] == model
    assert doc["flags"] == {"age": ["out_of_range"]} and doc["features"]["age"] == 150.0
    assert _observations(pgw, "nightly") == ROWS  # counted once, by the logger's observe()
    searches = {s.key: s.query for s in red_flag_searches(profile)}
    low, high = data["features"][0]["allowed_range"]
    outside = (frame["age"] < low) | (frame["age"] > high)
    expected = {"age.out_of_range": set(frame["id"][outside]),
                "city.unseen": set(frame["id"][frame["city"] == "oslo"])}
    assert len(expected["age.out_of_range"]) >= 15 and len(expected["city.unseen"]) == 30
    for key, ids in expected.items():
        hits = client.search(index=index, size=1000,
                             query={"query_string": {"query": searches[key]}})["hits"]["hits"]
        assert {h["_id"] for h in hits} == ids, key

    # The same file again: the ids exist, nothing is indexed twice; the counts replace.
    assert main(args) == 0, capsys.readouterr().err
    client.indices.refresh(index=index)
    assert client.count(index=index)["count"] == ROWS
    assert _observations(pgw, "nightly") == ROWS
