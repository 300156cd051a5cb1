"""The one Pushgateway client against a real Pushgateway: what it sends, and how it fails.

PUT and POST keep prometheus_client's meaning (replace the group / replace the families sent);
a 4xx the real Pushgateway gives (series conflicting with another group's) is not retried. The
faults a real Pushgateway does not produce on demand come from fakes BESIDE it: `FlakyFront`
answers 503 to the first requests then forwards to the real one, FaultyProxy's `hang` mode
accepts and never answers.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.metrics_core import SummaryMetricFamily

import mlmon.names as N
from mlmon.batch import BatchRun
from mlmon.cli import main
from mlmon.errors import CliError
from mlmon.exporter.profile import Profile
from mlmon.exporter.pushgateway import PushError, Pushgateway, check_reachable
from tests.integration import prom_servers
from tests.integration.faulty_proxy import FaultyProxy
from tests.integration.prom_servers import Server
from tests.profiles import sample_profile_dict

pushgateway_factory = prom_servers.pushgateway_factory

pytestmark = pytest.mark.integration


class FlakyFront:
    """An HTTP front for a real Pushgateway: answers `failures` requests with 503, then forwards
    each request as it came; counts the requests it was sent."""

    def __init__(self, upstream: str, failures: int = 0) -> None:
        self.upstream, self.failures, self.requests = upstream, failures, 0
        front = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                front.requests += 1
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if front.failures > 0:
                    front.failures -= 1
                    self._answer(503, b"overloaded, try later\n")
                    return
                request = urllib.request.Request(
                    front.upstream + self.path, data=body, method=self.command,
                    headers={k: v for k, v in self.headers.items() if k == "Content-Type"})
                try:
                    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                        self._answer(answer.status, answer.read())
                except urllib.error.HTTPError as exc:
                    self._answer(exc.code, exc.read())

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = do_POST = do_DELETE = _any

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def pgw(pushgateway_factory: Callable[..., Server]) -> Server:
    return pushgateway_factory()


@pytest.fixture
def front(pgw: Server) -> Iterator[FlakyFront]:
    flaky = FlakyFront(pgw.url)
    yield flaky
    flaky.close()


def _gauges(**values: float) -> CollectorRegistry:
    registry = CollectorRegistry()
    for name, value in values.items():
        Gauge(name, name, registry=registry).set(value)
    return registry


def _group(url: str, **labels: str) -> dict[str, float]:
    """Family name -> value (of the first series) of the one group with exactly `labels` (job
    included); histograms and summaries left out."""
    with urllib.request.urlopen(url + "/api/v1/metrics", timeout=5) as answer:  # noqa: S310
        groups = json.load(answer)["data"]
    found = [g for g in groups if g["labels"] == labels]
    assert len(found) == 1, [g["labels"] for g in groups]
    return {name: float(family["metrics"][0]["value"]) for name, family in found[0].items()
            if name != "labels" and not name.startswith("push_") and isinstance(family, dict)
            and "value" in family["metrics"][0]}


def test_put_replaces_the_group_and_post_only_the_families_sent(pgw: Server) -> None:
    gateway = Pushgateway(pgw.url)
    odd = {"instance": "run/with spaces", "empty": ""}  # any value survives the URL
    assert gateway.push("job a", _gauges(x=1, y=2), odd, replace=True) == 1
    gateway.push("job a", _gauges(x=10), odd, replace=False)  # POST: y stays
    assert _group(pgw.url, job="job a", **odd) == {"x": 10, "y": 2}
    gateway.push("job a", _gauges(z=3), odd, replace=True)  # PUT: the group is z alone
    assert _group(pgw.url, job="job a", **odd) == {"z": 3}
    gateway.delete("job a", odd)
    deadline = time.monotonic() + 10  # the Pushgateway applies a DELETE asynchronously (202)
    while gateway.groups() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gateway.groups() == []


def test_a_transient_5xx_is_retried_and_the_push_arrives(pgw: Server, front: FlakyFront) -> None:
    front.failures = 2
    sleeps: list[float] = []
    gateway = Pushgateway(front.url, attempts=3, sleep=sleeps.append)
    assert gateway.push("retrain", _gauges(x=4), {"model": "churn"}, replace=False) == 3
    assert sleeps == [0.5, 1.0] and front.requests == 3
    assert _group(pgw.url, job="retrain", model="churn") == {"x": 4}  # on the real one


def test_a_5xx_that_lasts_gives_up_after_the_attempts_with_one_line(
        front: FlakyFront) -> None:
    front.failures = 10
    sleeps: list[float] = []
    gateway = Pushgateway(front.url, attempts=4, sleep=sleeps.append, max_backoff_s=1.5)
    with pytest.raises(PushError) as raised:
        gateway.push("retrain", _gauges(x=4), {"model": "churn"}, replace=False)
    assert str(raised.value) == (f"the Pushgateway {front.url} failed to push job=retrain "
                                 "model=churn: HTTP 503: overloaded, try later (4 attempts)")
    assert (raised.value.status, raised.value.attempts) == (503, 4)
    assert sleeps == [0.5, 1.0, 1.5] and front.requests == 4  # capped backoff


def test_a_4xx_is_not_retried_and_says_it_is_the_request(pgw: Server, front: FlakyFront) -> None:
    # Another job holds a family of the same name as a summary: the real Pushgateway refuses a
    # gauge of that name (400), and would refuse it again.
    Pushgateway(pgw.url).push("other", _Families(SummaryMetricFamily("x", "x", count_value=1,
                                                                     sum_value=2.0)),
                              replace=True)
    sleeps: list[float] = []
    gateway = Pushgateway(front.url, attempts=3, sleep=sleeps.append)
    with pytest.raises(PushError) as raised:
        gateway.push("retrain", _gauges(x=4), {"model": "churn"}, replace=False)
    message = str(raised.value)
    assert message.startswith(f"the Pushgateway {front.url} refused to push job=retrain "
                              "model=churn: HTTP 400: ")
    assert message.endswith("(not retried: a 400 means the URL or what was sent is wrong, not "
                            "that the Pushgateway is down)")
    assert "\n" not in message and "inconsistent" in message  # the Pushgateway's own reason
    assert (raised.value.status, raised.value.attempts) == (400, 1)
    assert sleeps == [] and front.requests == 1


def test_a_hung_pushgateway_times_out_each_attempt(pgw: Server) -> None:
    port = int(pgw.url.rsplit(":", 1)[1])
    with FaultyProxy(upstream_port=port) as proxy:
        proxy.mode = "hang"
        sleeps: list[float] = []
        gateway = Pushgateway(proxy.url, timeout_s=0.5, attempts=2, sleep=sleeps.append)
        started = time.monotonic()
        with pytest.raises(PushError) as raised:
            gateway.push("retrain", _gauges(x=4), {"model": "churn"}, replace=False)
        took = time.monotonic() - started
        assert str(raised.value) == (f"cannot reach the Pushgateway {proxy.url} to push "
                                     "job=retrain model=churn: timed out after 0.5 s "
                                     "(2 attempts)")
        assert proxy.connections == 2 and sleeps == [0.5]
        assert 0.9 <= took < 20  # two timeouts of 0.5 s; generous: the machine is loaded
        # The timed-out requests sit in the stalled connections: passed on now, they would
        # reach the Pushgateway late, after the push below (a late duplicate, as a route that
        # comes back can deliver). Dropped here, so the recovery is seen on its own.
        proxy.mode = "reset"
        proxy.mode = "pass"  # the same client pushes once the Pushgateway answers again
        assert gateway.push("retrain", _gauges(x=5), {"model": "churn"}, replace=False) == 1
    assert _group(pgw.url, job="retrain", model="churn") == {"x": 5}


def test_the_readiness_check_is_one_cli_line(pgw: Server) -> None:
    check_reachable(pgw.url, timeout=5)  # ready: no error
    check_reachable(pgw.url.removeprefix("http://") + "/", timeout=5)  # host:port/ is the same
    with pytest.raises(CliError, match=r"^--pushgateway 'not a url': not a Pushgateway URL"):
        check_reachable("not a url", timeout=5)
    with pytest.raises(CliError, match=rf"^the Pushgateway {pgw.url}/wrong refused its "
                       r"readiness check: HTTP 404: 404 page not found \(not retried: "):
        check_reachable(pgw.url + "/wrong", timeout=5)


class _Families:
    """A registry of the given metric families."""

    def __init__(self, *families: Any) -> None:
        self.families = families

    def collect(self) -> Any:
        return self.families


# ---- the callers, through a Pushgateway that fails once -----------------------------------


def test_a_batch_run_recovers_from_a_transient_5xx(pgw: Server, front: FlakyFront) -> None:
    front.failures = 1
    profile = Profile.from_dict(sample_profile_dict())
    with BatchRun(profile, job="nightly", pushgateway=front.url, sleep=lambda s: None) as run:
        run.observe_batch({"age": [30.0, 31.0]}, [0.5, 0.7])
    assert (run.push_error, run.failed_pushes, front.requests) == (None, 1, 2)
    group = _group(pgw.url, job=N.BATCH_PUSH_JOB, batch_job="nightly", model="churn",
                   model_version="3")
    assert group[N.BATCH_RUN_ROWS.name] == 2 and group[N.BATCH_RUN_SUCCESS.name] == 1


def test_the_batch_cli_exits_2_with_one_line_on_a_refused_push(
        pgw: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the run's rows series already exists as a summary in another group: a 400, not retried
    Pushgateway(pgw.url).push("other", _Families(SummaryMetricFamily(
        N.BATCH_RUN_ROWS.name, "x", count_value=1, sum_value=2.0)), replace=True)
    profile = tmp_path / "p.json"
    profile.write_text(json.dumps(sample_profile_dict()), encoding="utf-8")
    data = tmp_path / "scored.csv"
    data.write_text("age,pred\n30,0.5\n31,0.7\n", encoding="utf-8")
    status = main(["batch", str(data), "--profile", str(profile), "--prediction-column", "pred",
                   "--pushgateway", pgw.url, "--job", "nightly"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1, err
    assert err.startswith(f"mlmon batch: error: the Pushgateway {pgw.url} refused to push "
                          f"job={N.BATCH_PUSH_JOB} batch_job=nightly model=churn "
                          "model_version=3: HTTP 400: "), err
    assert "(not retried: a 400 means the URL or what was sent is wrong" in err


# ---- basic auth, from the URL's user:password@ --------------------------------------------

# A test password (with a `:`, percent-encoded in the URL) and its bcrypt hash (cost 4), which
# the Pushgateway's web config holds.
AUTH_USER, AUTH_PASSWORD = "mlmon", "s3cret:pw"
AUTH_HASH = "$2b$04$j25JRiiOfFN99bItmj7VReqFXwmpZFp6OIT9Sp07V23hobZpLFlcy"


def test_basic_auth_from_the_url_reaches_a_protected_pushgateway_and_hides_the_password(
        pushgateway_factory: Callable[..., Server], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    pgw = pushgateway_factory(basic_auth=(AUTH_USER, AUTH_PASSWORD, AUTH_HASH))
    host = pgw.url.removeprefix("http://")
    url = f"http://{AUTH_USER}:{urllib.parse.quote(AUTH_PASSWORD, safe='')}@{host}"
    gateway = Pushgateway(url)
    assert gateway.url == f"http://{AUTH_USER}:***@{host}"
    assert gateway.push("retrain", _gauges(x=4), {"model": "churn"}, replace=False) == 1
    [group] = gateway.groups()
    assert group["labels"] == {"job": "retrain", "model": "churn"}
    check_reachable(url, timeout=5)
    for wrong, shown in ((f"http://{AUTH_USER}:wrong-pw@{host}", f"http://{AUTH_USER}:***@{host}"),
                         (pgw.url, pgw.url)):  # a wrong password, none: refused, not retried
        with pytest.raises(PushError) as raised:
            Pushgateway(wrong, sleep=lambda s: None).push("retrain", _gauges(x=5),
                                                          replace=False)
        assert (raised.value.status, raised.value.attempts) == (401, 1)
        assert str(raised.value).startswith(f"the Pushgateway {shown} refused to push "
                                            "job=retrain: HTTP 401"), str(raised.value)
    # the CLI prints the URL it pushed to without the password
    profile = tmp_path / "p.json"
    profile.write_text(json.dumps(sample_profile_dict()), encoding="utf-8")
    data = tmp_path / "scored.csv"
    data.write_text("age,pred\n30,0.5\n", encoding="utf-8")
    assert main(["batch", str(data), "--profile", str(profile), "--prediction-column", "pred",
                 "--pushgateway", url, "--job", "nightly"]) == 0
    out, err = capsys.readouterr()
    assert f"pushed to http://{AUTH_USER}:***@{host} as job 'nightly'" in out, out + err
    assert "s3cret" not in out + err and "s3cret%3Apw" not in out + err


def test_a_tls_error_is_not_retried_and_says_it_is_tls(pgw: Server) -> None:
    sleeps: list[float] = []
    url = pgw.url.replace("http://", "https://")  # the Pushgateway speaks http on that port
    with pytest.raises(PushError) as raised:
        Pushgateway(url, attempts=3, sleep=sleeps.append).push("retrain", _gauges(x=4),
                                                               replace=False)
    message = str(raised.value)
    assert message.startswith(f"TLS error with the Pushgateway {url} to push job=retrain: "), \
        message
    assert message.endswith("(not retried: an https URL to an http port, or a certificate this "
                            "host does not trust)") and "\n" not in message
    assert raised.value.attempts == 1 and sleeps == []
