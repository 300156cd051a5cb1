"""`mlmon outcomes` end to end: real Elasticsearch, Pushgateway and Prometheus.

Three replicas (three `PredictionLogger`s, each with its own shipper and spool) record
predictions into Elasticsearch; labels arrive later as a CSV file fed to the real CLI (a
subprocess). Prometheus scrapes the Pushgateway the CLI pushes to. Proven exactly: every label
is counted once (the confusion matrix Prometheus sees equals the one computed here from the
pairs), unknown ids and duplicates by reason, also when the same file is fed again and when two
runs race on the same labels; the outcome fields are on the records. Prometheus evaluates the
rules generated from alerting/config.yaml with the outcome windows shortened: the realized
accuracy it records over the runs' groups equals scikit-learn's on the joined pairs within 1e-9.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from elasticsearch import Elasticsearch
from prometheus_client import CollectorRegistry
from sklearn.metrics import accuracy_score

import mlmon.names as N
from mlmon.exporter.monitor import ModelMonitor
from mlmon.exporter.profile import Profile
from mlmon.log_shipper import es_assets
from mlmon.log_shipper.facade import PredictionLogger
from mlmon.log_shipper.record import RecordBuilder, stable_id
from mlmon.names import CHALLENGER_ROLE, CHAMPION_ROLE
from tests.integration import prom_servers
from tests.integration.es_server import es_server, es_url  # noqa: F401
from tests.integration.prom_servers import generated_rules
from tests.integration.test_prometheus_outcomes import LONG
from tests.integration.test_prometheus_outcomes import _short_windows as short_windows
from tests.profiles import sample_profile_dict

prometheus_factory = prom_servers.prometheus_factory
pushgateway_factory = prom_servers.pushgateway_factory

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CLASSES = ["no", "yes"]


def write_profile(tmp_path: Path, model: str, version: str = "3") -> tuple[Path, Profile]:
    data = sample_profile_dict(classification=True)
    data["model"]["name"], data["model"]["version"] = model, version
    path = tmp_path / f"profile-{version}.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path, Profile.from_dict(data)


def ship_predictions(es: str, tmp_path: Path, profile: Profile, replicas: int, per_replica: int,
                     seed: int, version_profiles: dict[str, Profile] | None = None
                     ) -> dict[str, str]:
    """Records from `replicas` loggers; request id -> predicted class."""
    rng = np.random.default_rng(seed)
    predicted: dict[str, str] = {}
    loggers = []
    for r in range(replicas):
        p = (version_profiles or {}).get(str(r), profile)
        monitor = ModelMonitor(p, CollectorRegistry(), multiproc_directory=None)
        loggers.append(PredictionLogger.from_profile(
            p, service_name=f"api-{r}", environment="test", es_url=es,
            spool_dir=tmp_path / f"spool-{r}", monitor=monitor, max_age_s=0.2,
            handle_signals=False))
    for n in range(replicas * per_replica):
        logger = loggers[n % replicas]
        label = CLASSES[int(rng.random() < 0.4)]
        score = float(rng.uniform(0.5, 1.0))
        request_id = f"req-{seed}-{n}"
        other = CLASSES[1 - CLASSES.index(label)]
        assert logger.record({"age": 30.0 + n % 40, "city": "paris"}, label, request_id=request_id,
                             scores={label: score, other: 1 - score}) == request_id
        predicted[request_id] = label
    for logger in loggers:
        assert logger.close(timeout=60)
    return predicted


def write_labels(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["request_id", "y", "note"])
        for request_id, y in rows:
            writer.writerow([request_id, y, "x"])
    return path


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "mlmon", "outcomes", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def start_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "mlmon", "outcomes", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def summary_counts(stdout: str) -> dict[str, int]:
    """`labels.csv: 1,000 labels: 940 counted, 30 duplicate; pushed ...` -> {reason: n}."""
    line = stdout.strip().splitlines()[-1]
    parts = line.split(" labels: ", 1)[1].split(";")[0]
    out = {}
    for part in parts.split(", "):
        n, reason = part.split(" ", 1)
        out[reason] = int(n.replace(",", ""))
    return out


def confusion(prom: prom_servers.Prometheus, model: str) -> dict[tuple[str, str], float]:
    result = prom.query(f'sum by (predicted_class, actual_class) '
                        f'(mlmon_outcome_class_total{{model="{model}"}})')
    return {(r["metric"]["predicted_class"], r["metric"]["actual_class"]): float(r["value"][1])
            for r in result if float(r["value"][1])}


def rejected(prom: prom_servers.Prometheus, model: str) -> dict[str, float]:
    values = prom.values(f'sum by (reason) (mlmon_outcome_rejected_total{{model="{model}"}})',
                         "reason")
    return {k: v for k, v in values.items() if v}


def test_labels_through_the_cli_are_counted_once_in_prometheus(
        es_url: str, tmp_path: Path, pushgateway_factory: Any,  # noqa: F811
        prometheus_factory: Any) -> None:
    model = f"cli{uuid.uuid4().hex[:8]}"
    profile_path, profile = write_profile(tmp_path, model)
    client = Elasticsearch(es_url)
    es_assets.install(client, profile)
    predicted = ship_predictions(es_url, tmp_path, profile, replicas=3, per_replica=120, seed=1)
    pushgateway = pushgateway_factory()
    prom = prometheus_factory(targets={"pushgateway": [pushgateway.url.removeprefix("http://")]},
                              rule_files=generated_rules(tmp_path / "rules", short_windows))

    rng = np.random.default_rng(7)
    ids = sorted(predicted)
    labelled = ids[: 300]  # 60 predictions never get a label
    actual = {i: (predicted[i] if rng.random() < 0.8 else CLASSES[1 - CLASSES.index(
        predicted[i])]) for i in labelled}
    rows = [(i, actual[i]) for i in labelled]
    rows += [(f"ghost-{k}", "yes") for k in range(7)]             # never predicted
    rows += [(labelled[0], "no"), (labelled[1], "yes")]           # second label, same file
    rows += [(labelled[2] + "x", "")]                             # unknown id, empty label
    labels = write_labels(tmp_path / "labels.csv", rows)
    common = ["--id-column", "request_id", "--label-column", "y", "--profile", str(profile_path),
              "--es-url", es_url, "--pushgateway", pushgateway.url, "--chunk-rows", "64"]

    first = run_cli(str(labels), *common)
    assert summary_counts(first.stdout) == {"counted": 300, "unknown_id": 7, "duplicate": 2,
                                            "missing_actual": 1}
    assert "job=mlmon_outcomes" in first.stdout and first.stderr == ""  # no TTY: no bar

    expected = Counter((predicted[i], actual[i]) for i in labelled)
    prom.wait_for(f'sum(mlmon_outcome_class_total{{model="{model}"}})',
                  lambda r: bool(r) and float(r[0]["value"][1]) == 300, timeout=60)
    assert confusion(prom, model) == {k: float(v) for k, v in expected.items()}
    assert rejected(prom, model) == {"unknown_id": 7, "duplicate": 2, "missing_actual": 1}
    pairs = [(predicted[i], actual[i]) for i in labelled]
    assert_accuracy(prom, model, pairs)

    # The same file again: every label is a duplicate now, nothing counted twice.
    again = run_cli(str(labels), *common)
    assert summary_counts(again.stdout) == {"counted": 0, "duplicate": 302, "unknown_id": 7,
                                            "missing_actual": 1}
    prom.wait_for(f'sum(mlmon_outcome_rejected_total{{model="{model}",reason="duplicate"}})',
                  lambda r: bool(r) and float(r[0]["value"][1]) == 304, timeout=60)
    assert confusion(prom, model) == {k: float(v) for k, v in expected.items()}

    # The outcome is on each record: actual class, correctness, arrival and delay.
    name = es_assets.data_stream_name(profile)
    client.indices.refresh(index=name)
    for i in labelled[:25]:
        source = client.get(index=_backing(client, name), id=stable_id(i)[0])["_source"]
        outcome = source["outcome"]
        assert outcome["label"] == actual[i]
        assert outcome["correct"] is (predicted[i] == actual[i])
        assert outcome["delay_s"] >= 0 and outcome["arrived_at"].endswith("Z")
    wrong = client.count(index=name, query={"term": {"outcome.correct": False}})["count"]
    assert wrong == sum(v for (p, a), v in expected.items() if p != a)

    # Two runs racing on the same new labels: each label counted by exactly one of them.
    more = ship_predictions(es_url, tmp_path / "more", profile, replicas=3, per_replica=100,
                            seed=2)
    race = write_labels(tmp_path / "race.csv", [(i, "yes") for i in sorted(more)])
    runs = [start_cli(str(race), *common) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in runs]
    assert [p.returncode for p in runs] == [0, 0], [o[1] for o in outputs]
    counts = [summary_counts(o[0]) for o in outputs]
    assert sum(c["counted"] for c in counts) == len(more)
    assert sum(c.get("duplicate", 0) for c in counts) == len(more)
    prom.wait_for(f'sum(mlmon_outcome_class_total{{model="{model}"}})',
                  lambda r: bool(r) and float(r[0]["value"][1]) == 300 + len(more), timeout=60)
    assert_accuracy(prom, model, pairs + [(more[i], "yes") for i in sorted(more)])
    groups = prom.query(f'count by (instance) (mlmon_counters_start_timestamp_seconds'
                        f'{{job="mlmon_outcomes",model="{model}"}})')
    assert len(groups) == 4  # one Pushgateway group per run, none overwritten


def assert_accuracy(prom: prom_servers.Prometheus, model: str,
                    pairs: list[tuple[str, str]]) -> None:
    """The recorded realized accuracy over the LONG window equals scikit-learn's on `pairs`."""
    want = accuracy_score([a for _p, a in pairs], [p for p, _a in pairs])
    labelled = f'{N.OUTCOME_LABELLED.at(LONG)}{{model="{model}"}}'
    prom.wait_for(labelled, lambda r: bool(r) and float(r[0]["value"][1]) == len(pairs),
                  timeout=60)
    got = prom.values(f'{N.OUTCOME_ACCURACY.at(LONG)}{{model="{model}"}}', "model")[model]
    assert abs(got - want) <= 1e-9, (got, want)


def _backing(client: Elasticsearch, name: str) -> str:
    return sorted(client.indices.get(index=name))[-1]


def test_cli_errors_are_one_line(es_url: str, tmp_path: Path) -> None:  # noqa: F811
    profile_path, profile = write_profile(tmp_path, f"err{uuid.uuid4().hex[:8]}")
    labels = write_labels(tmp_path / "labels.csv", [("a", "yes")])
    base = ["--profile", str(profile_path), "--pushgateway", "http://127.0.0.1:9"]

    def error(*args: str) -> str:
        done = run_cli(*args, check=False)
        assert done.returncode == 2 and done.stdout == "", done
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        return lines[0]

    assert "no column 'label'" in error(str(labels), "--id-column", "request_id",
                                        "--label-column", "label", "--es-url", es_url, *base)
    assert "cannot read: No such file" in error(str(tmp_path / "nope.csv"), "--id-column",
                                                "request_id", "--label-column", "y",
                                                "--es-url", es_url, *base)
    assert "no records of model" in error(str(labels), "--id-column", "request_id",
                                          "--label-column", "y", "--es-url", es_url, *base)
    client = Elasticsearch(es_url)
    name = es_assets.install(client, profile).data_stream
    record = RecordBuilder(model=profile.model_name, model_version="3", service_name="api",
                           environment="test", profile=profile).build({}, "yes", request_id="a")
    client.index(index=name, id="a", document=record, op_type="create")
    line = error(str(labels), "--id-column", "request_id", "--label-column", "y",
                 "--es-url", es_url, *base)
    assert line.startswith("mlmon outcomes: error: cannot reach the Pushgateway "
                           "http://127.0.0.1:9 to push job=mlmon_outcomes")  # nothing written
    assert "cannot connect" in error(str(labels), "--id-column", "request_id", "--label-column",
                                     "y", "--es-url", "http://127.0.0.1:9", *base)
    assert "no Pushgateway" in error(str(labels), "--id-column", "request_id", "--label-column",
                                     "y", "--es-url", es_url, "--profile", str(profile_path))


def test_a_failed_last_push_names_the_outcomes_written_and_the_run(
        es_url: str, tmp_path: Path, pushgateway_factory: Any,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The Pushgateway (real) goes away while the labels are joined: the outcomes are written,
    the last push fails, and the one error line says how many and which run."""
    from mlmon.cli import main as mlmon_main
    from mlmon.log_shipper.join import OutcomeJoiner

    profile_path, profile = write_profile(tmp_path, f"gone{uuid.uuid4().hex[:8]}")
    client = Elasticsearch(es_url)
    name = es_assets.install(client, profile).data_stream
    builder = RecordBuilder(model=profile.model_name, model_version="3", service_name="api",
                            environment="test", profile=profile)
    for request_id in ("a", "b", "c"):
        client.index(index=name, id=stable_id(request_id)[0], op_type="create", refresh=True,
                     document=builder.build({}, "yes", request_id=request_id))
    labels = write_labels(tmp_path / "labels.csv", [("a", "yes"), ("b", "no"), ("c", "yes"),
                                                    ("ghost", "yes")])
    gateway = pushgateway_factory()
    join = OutcomeJoiner.join

    def join_then_lose_the_gateway(self: OutcomeJoiner, *args: Any, **kwargs: Any) -> Any:
        verdicts = join(self, *args, **kwargs)
        gateway.stop()
        return verdicts

    monkeypatch.setattr(OutcomeJoiner, "join", join_then_lose_the_gateway)
    status = mlmon_main(["outcomes", str(labels), "--id-column", "request_id", "--label-column",
                         "y", "--profile", str(profile_path), "--es-url", es_url,
                         "--pushgateway", gateway.url, "--run-id", "run-gone-1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    assert err[0].startswith(f"mlmon outcomes: error: cannot reach the Pushgateway "
                             f"{gateway.url} to push job=mlmon_outcomes instance=run-gone-1: "), err
    assert "3 outcomes written to Elasticsearch but not pushed (run run-gone-1)" in err[0], err
    client.indices.refresh(index=name)
    written = client.search(index=name, query={"exists": {"field": "outcome"}}, size=10)
    assert sorted(h["_id"] for h in written["hits"]["hits"]) == sorted(
        stable_id(i)[0] for i in ("a", "b", "c"))


def test_the_readme_outcomes_command_runs(es_url: str, tmp_path: Path,  # noqa: F811
                                          pushgateway_factory: Any) -> None:
    """The README's `mlmon outcomes` command, as written but for the two servers' addresses."""
    from tests.test_readme_commands import argv, commands_for

    (command,) = commands_for("mlmon outcomes")
    gateway = pushgateway_factory()
    assert "http://127.0.0.1:9200" in command and "http://127.0.0.1:9091" in command
    command = command.replace("http://127.0.0.1:9200", es_url).replace(
        "http://127.0.0.1:9091", gateway.url)
    model = f"readme{uuid.uuid4().hex[:8]}"
    _path, profile = write_profile(tmp_path, model)
    profile.dump(tmp_path / "profile.json")
    es_assets.install(Elasticsearch(es_url), profile)
    predicted = ship_predictions(es_url, tmp_path, profile, replicas=1, per_replica=20, seed=3)
    with open(tmp_path / "labels.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["request_id", "churned"])
        writer.writerows([i, p] for i, p in predicted.items())
    done = subprocess.run(argv(command), cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert summary_counts(done.stdout) == {"counted": 20}


def test_regression_labels_from_parquet_give_numpy_mae_rmse_and_bias(
        es_url: str, tmp_path: Path, pushgateway_factory: Any,  # noqa: F811
        prometheus_factory: Any) -> None:
    """Parquet, an arrival column, a regression model: MAE, RMSE and bias recorded by
    Prometheus equal numpy's on the joined pairs; text that is no number is wrong_type."""
    import pandas as pd

    model = f"reg{uuid.uuid4().hex[:8]}"
    data = sample_profile_dict(classification=False)
    data["model"]["name"] = model
    profile_path = tmp_path / "profile.json"
    profile_path.write_text(json.dumps(data), encoding="utf-8")
    profile = Profile.from_dict(data)
    client = Elasticsearch(es_url)
    es_assets.install(client, profile)
    rng = np.random.default_rng(11)
    predictions = {f"q{n}": round(float(rng.normal(0, 1)), 4) for n in range(240)}
    loggers = [PredictionLogger.from_profile(
        profile, service_name=f"api-{r}", environment="test", es_url=es_url,
        spool_dir=tmp_path / f"spool-{r}",
        monitor=ModelMonitor(profile, CollectorRegistry(), multiproc_directory=None),
        max_age_s=0.2, handle_signals=False) for r in range(3)]
    for n, (request_id, y) in enumerate(predictions.items()):
        loggers[n % 3].record({"age": 40.0}, y, request_id=request_id)
    for logger in loggers:
        assert logger.close(timeout=60)
    actual = {i: round(y + float(rng.normal(0.3, 0.5)), 4) for i, y in predictions.items()}
    arrived = pd.Timestamp.now(tz="UTC").floor("s")
    frame = pd.DataFrame({
        "request_id": [*actual, "q0", "nope"],
        "y": [str(v) for v in actual.values()] + ["high", "1.0"],  # text, parsed per cell
        "arrived": [arrived.isoformat()] * (len(actual) + 2)})
    labels = tmp_path / "labels.parquet"
    frame.to_parquet(labels)
    pushgateway = pushgateway_factory()
    prom = prometheus_factory(targets={"pushgateway": [pushgateway.url.removeprefix("http://")]},
                              rule_files=generated_rules(tmp_path / "rules", short_windows))
    done = run_cli(str(labels), "--id-column", "request_id", "--label-column", "y",
                   "--arrived-column", "arrived", "--profile", str(profile_path),
                   "--es-url", es_url, "--pushgateway", pushgateway.url)
    assert summary_counts(done.stdout) == {"counted": 240, "wrong_type": 1, "unknown_id": 1}
    errors = np.array([predictions[i] - actual[i] for i in actual])
    prom.wait_for(f'{N.OUTCOME_LABELLED.at(LONG)}{{model="{model}"}}',
                  lambda r: bool(r) and float(r[0]["value"][1]) == 240, timeout=60)
    for rule, want in ((N.OUTCOME_MAE, np.mean(np.abs(errors))),
                       (N.OUTCOME_RMSE, np.sqrt(np.mean(errors ** 2))),
                       (N.OUTCOME_BIAS, np.mean(errors))):
        got = prom.values(f'{rule.at(LONG)}{{model="{model}"}}', "model")[model]
        assert abs(got - float(want)) <= 1e-9, (rule, got, want)
    name = es_assets.data_stream_name(profile)
    client.indices.refresh(index=name)
    source = client.get(index=_backing(client, name), id="q5")["_source"]
    assert source["outcome"]["value"] == actual["q5"]
    assert source["outcome"]["error"] == predictions["q5"] - actual["q5"]
    assert source["outcome"]["arrived_at"] == arrived.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def pushed_samples(url: str, run_id: str, name: str, *by: str) -> dict[tuple[str, ...], float]:
    """`{(model_version, *<by> labels): value}` of series `name` in the Pushgateway group of
    `run_id`, read from the Pushgateway's own /metrics (zeros left out)."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as answer:
        text = answer.read().decode("utf-8")
    out: Counter[tuple[str, ...]] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels.get("instance") == run_id:
                key = (sample.labels["model_version"], *(sample.labels[b] for b in by))
                out[key] += sample.value
    return {k: v for k, v in out.items() if v}


def test_labels_fed_once_score_the_champion_and_the_challenger(
        es_url: str, tmp_path: Path, pushgateway_factory: Any) -> None:  # noqa: F811
    model = f"shadow{uuid.uuid4().hex[:8]}"
    champion_path, champion = write_profile(tmp_path, model, "3")
    challenger_path, challenger = write_profile(tmp_path, model, "4")
    client = Elasticsearch(es_url)
    es_assets.install(client, champion)

    def challenger_predict(features: dict[str, Any]) -> str:
        return "yes" if features["age"] >= 50 else "no"

    rng = np.random.default_rng(11)
    predicted: dict[tuple[str, str], str] = {}  # (version, request id) -> class
    loggers = []
    for name, shadow in (("shadowed", True), ("alone", False)):
        monitor = ModelMonitor(champion, CollectorRegistry(), multiproc_directory=None)
        logger = PredictionLogger.from_profile(
            champion, service_name=name, environment="test", es_url=es_url,
            spool_dir=tmp_path / f"spool-{name}", monitor=monitor, max_age_s=0.2,
            handle_signals=False)
        if shadow:  # queue room for every request: none is shed
            logger.add_challenger(challenger, challenger_predict, max_pending=10_000,
                                  isolation="thread")  # a local function: not picklable
        loggers.append(logger)
    for n in range(240):  # the last 40 requests go through a logger without a challenger
        shadow = n < 200
        request_id = f"req-{n}" if shadow else f"solo-{n}"
        if n == 0:  # over Elasticsearch's 512-byte _id: both records are under stable_id's hash
            request_id = "long-" + "x" * 600
        features = {"age": 30.0 + n % 40, "city": "paris"}
        label = CLASSES[int(rng.random() < 0.4)]
        assert loggers[0 if shadow else 1].record(features, label, request_id=request_id,
                                                  scores={label: 0.7}) == stable_id(request_id)[0]
        predicted[("3", request_id)] = label
        if shadow:
            predicted[("4", request_id)] = challenger_predict(features)
    for logger in loggers:
        assert logger.close(timeout=60)
    stream = es_assets.data_stream_name(champion)
    client.indices.refresh(index=stream)
    assert client.count(index=stream, query={"term": {"model.role": "challenger"}}
                        )["count"] == 200

    ids = [i for v, i in predicted if v == "3"]
    actual = {i: CLASSES[int(rng.random() < 0.5)] for i in ids}
    labels = write_labels(tmp_path / "labels.csv", [*actual.items(),
                                                    *((f"nope-{k}", "yes") for k in range(10))])
    gateway = pushgateway_factory()
    args = [str(labels), "--id-column", "request_id", "--label-column", "y",
            "--profile", str(champion_path), "--profile", str(challenger_path),
            "--es-url", es_url, "--pushgateway", gateway.url, "--chunk-rows", "64"]
    first = run_cli(*args, "--run-id", "shadow-1")
    line = first.stdout.strip().splitlines()[-1]
    assert summary_counts(first.stdout) == {"counted": 240, "unknown_id": 10}
    # 40 requests the challenger never saw and 10 unknown ids: no challenger record, no reason
    assert "; challenger records: 200 counted, 50 without one;" in line, line
    expected: Counter[tuple[str, ...]] = Counter()
    for (version, request_id), label in predicted.items():
        expected[(version, label, actual[request_id])] += 1
    # each version's confusion matrix, exactly: 240 champion records, 200 challenger ones
    assert pushed_samples(gateway.url, "shadow-1", "mlmon_outcome_class_total",
                          "predicted_class", "actual_class") == dict(expected)
    assert pushed_samples(gateway.url, "shadow-1", "mlmon_outcome_rejected_total",
                          "reason") == {("3", "unknown_id"): 10}
    client.indices.refresh(index=stream)
    hits = client.search(index=stream, query={"ids": {"values": ["req-7.challenger"]}})
    record = hits["hits"]["hits"][0]["_source"]
    assert record["model"]["version"] == "4"
    assert record["outcome"]["label"] == actual["req-7"]

    again = run_cli(*args, "--run-id", "shadow-2")
    line = again.stdout.strip().splitlines()[-1]
    assert summary_counts(again.stdout) == {"counted": 0, "duplicate": 240, "unknown_id": 10}
    assert "; challenger records: 0 counted, 200 duplicate, 50 without one;" in line, line
    assert pushed_samples(gateway.url, "shadow-2", "mlmon_outcome_class_total",
                          "predicted_class", "actual_class") == {}
    assert pushed_samples(gateway.url, "shadow-2", "mlmon_outcome_rejected_total",
                          "reason") == {("3", "duplicate"): 240, ("4", "duplicate"): 200,
                                        ("3", "unknown_id"): 10}


def test_a_rerun_counts_each_versions_rejections_under_its_own_version(
        es_url: str, tmp_path: Path, pushgateway_factory: Any) -> None:  # noqa: F811
    """With a champion and a challenger `--profile`, a rejection of a record (a duplicate on a
    re-run or twice in one file, a record without a usable prediction) is counted under that
    record's model version, the challenger's under the challenger's; a label with no record
    under the first `--profile`'s."""
    model = f"dup{uuid.uuid4().hex[:8]}"
    champion_path, champion = write_profile(tmp_path, model, "3")
    challenger_path, challenger = write_profile(tmp_path, model, "4")
    client = Elasticsearch(es_url)
    stream = es_assets.install(client, champion).data_stream
    builder = RecordBuilder(model=model, model_version="3", service_name="api",
                            environment="test", profile=champion).with_role(CHAMPION_ROLE)
    shadow = builder.for_model(model, "4", challenger, CHALLENGER_ROLE)
    long_id = "long-" + "x" * 600  # over 512 bytes: both records are under hash ids
    records = [builder.build({}, "yes", request_id=i) for i in ("a", "b", "c", long_id)]
    # the shadow path hands the challenger the champion's event.id; "c" has no challenger
    # record, and "b"'s holds no usable prediction
    records += [shadow.build({}, prediction, request_id=stable_id(i)[0])
                for i, prediction in (("a", "no"), ("b", float("nan")), (long_id, "yes"))]
    for record in records:
        client.index(index=stream, id=record["event"]["id"], document=record, op_type="create")
    client.indices.refresh(index=stream)
    labels = write_labels(tmp_path / "labels.csv", [("a", "yes"), ("b", "no"), ("c", "yes"),
                                                    (long_id, "no"), ("a", "no"), ("ghost", "no")])
    gateway = pushgateway_factory()
    args = [str(labels), "--id-column", "request_id", "--label-column", "y",
            "--profile", str(champion_path), "--profile", str(challenger_path),
            "--es-url", es_url, "--pushgateway", gateway.url]

    first = run_cli(*args, "--run-id", "dup-1")
    assert summary_counts(first.stdout) == {"counted": 4, "duplicate": 1, "unknown_id": 1}
    line = first.stdout.strip().splitlines()[-1]
    assert ("; challenger records: 2 counted, 2 without one, 1 invalid_prediction, "
            "1 duplicate;") in line, line
    # "a" twice in the file: the second label is a duplicate on each version's record
    assert pushed_samples(gateway.url, "dup-1", "mlmon_outcome_rejected_total", "reason") == {
        ("3", "duplicate"): 1, ("3", "unknown_id"): 1,
        ("4", "duplicate"): 1, ("4", "invalid_prediction"): 1}

    again = run_cli(*args, "--run-id", "dup-2")
    assert summary_counts(again.stdout) == {"counted": 0, "duplicate": 5, "unknown_id": 1}
    assert pushed_samples(gateway.url, "dup-2", "mlmon_outcome_rejected_total", "reason") == {
        ("3", "duplicate"): 5, ("3", "unknown_id"): 1,
        ("4", "duplicate"): 3, ("4", "invalid_prediction"): 1}
    assert pushed_samples(gateway.url, "dup-2", "mlmon_outcome_class_total",
                          "predicted_class", "actual_class") == {}
