"""A run's outcome counts on the Pushgateway: one group per run, old groups pruned.

`mlmon outcomes` lives for minutes, so Prometheus cannot scrape it: it pushes its registry to
the Pushgateway under `job=OUTCOMES_PUSH_JOB` ("mlmon_outcomes"), `instance=<run id>`. One group
per run, never shared: a PUT replaces a group whole, so runs sharing one would overwrite each
other's counts, and a read-modify-write would race. Each group carries
`mlmon_counters_start_timestamp_seconds` = the run's start, so the restart-aware window counts
(mlmon/alerting/promql.py) treat a run like a process that started then: its counts enter the
windows it falls in, whole.

A group whose last push is older than the longest outcome window + restart_grace no longer
changes any window: each run deletes such groups (its own job's only), so the Pushgateway does
not grow without bound.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

from mlmon.names import OUTCOMES_PUSH_JOB


class PushError(RuntimeError):
    """The Pushgateway refused or could not be reached; the message is one line."""


def _group_path(job: str, grouping: dict[str, str]) -> str:
    """`/metrics/job/<job>/<label>@base64/<value>...`: any value is safe in the URL."""
    parts = [f"/metrics/job@base64/{_b64(job)}"]
    parts += [f"{k}@base64/{_b64(v)}" for k, v in sorted(grouping.items())]
    return "/".join(parts)


def _b64(value: str) -> str:
    # The Pushgateway reads an empty value as `=` (its documented special case).
    return base64.urlsafe_b64encode(value.encode()).decode() or "="


class RunGroup:
    """This run's group on the Pushgateway.

    >>> group = RunGroup("http://127.0.0.1:9091", registry, run_id="20261129T101500Z-1a2b3c4d")
    >>> group.push()                     # PUT: the whole registry, replacing the group
    >>> group.prune(older_than_s=8 * 86400)
    """

    def __init__(self, url: str, registry: Any, run_id: str, *, timeout: float = 10.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.url = url.rstrip("/")
        if "://" not in self.url:
            self.url = "http://" + self.url
        self.registry = registry
        self.run_id = run_id
        self.timeout = timeout
        self._clock = clock

    def push(self) -> None:
        """Replace this run's group with the registry's current values."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        body = generate_latest(_Merged(self.registry))
        self._request("PUT", _group_path(OUTCOMES_PUSH_JOB, {"instance": self.run_id}), body,
                      {"Content-Type": CONTENT_TYPE_LATEST}, what=f"instance={self.run_id}")

    def prune(self, older_than_s: float) -> list[str]:
        """Delete the groups of `OUTCOMES_PUSH_JOB` (other runs') last pushed more than
        `older_than_s` ago; their instance labels."""
        import json

        answer = json.loads(self._request("GET", "/api/v1/metrics"))
        cutoff = self._clock() - older_than_s
        deleted = []
        for group in answer.get("data", []):
            labels = group.get("labels", {})
            if labels.get("job") != OUTCOMES_PUSH_JOB or labels.get("instance") == self.run_id:
                continue
            pushed = _push_time(group)
            if pushed is not None and pushed < cutoff:
                grouping = {k: v for k, v in labels.items() if k != "job"}
                self._request("DELETE", _group_path(OUTCOMES_PUSH_JOB, grouping),
                              what=" ".join(f"{k}={v}" for k, v in sorted(grouping.items())))
                deleted.append(labels.get("instance", ""))
        return deleted

    def _request(self, method: str, path: str, body: bytes | None = None,
                 headers: dict[str, str] | None = None, what: str = "") -> bytes:
        """`what`: the group, for the error message (the path is base64)."""
        import requests

        try:
            response = requests.request(method, self.url + path, data=body,
                                        headers=headers or {}, timeout=self.timeout)
        except requests.RequestException as exc:
            raise PushError(f"cannot reach the Pushgateway ({type(exc).__name__})") from exc
        if response.status_code >= 300:
            text = " ".join(response.text.split())[:200]
            target = f"the group job={OUTCOMES_PUSH_JOB} {what}" if what else path
            raise PushError(f"the Pushgateway answered HTTP {response.status_code} to {method} "
                            f"{target}: {text}")
        return bytes(response.content)


class _Merged:
    """A registry's families with the same name merged into one: each model version's
    OutcomeMonitor exports its own, and the Pushgateway refuses a body that declares a family
    twice ("second TYPE line")."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry

    def collect(self) -> list[Any]:
        from prometheus_client.metrics_core import Metric

        merged: dict[str, Any] = {}
        for family in self.registry.collect():
            into = merged.get(family.name)
            if into is None:
                into = merged[family.name] = Metric(family.name, family.documentation,
                                                    family.type, family.unit)
            into.samples.extend(family.samples)
        return list(merged.values())


def _push_time(group: dict[str, Any]) -> float | None:
    """The group's last successful push (the Pushgateway's own `push_time_seconds`)."""
    try:
        return float(group["push_time_seconds"]["metrics"][0]["value"])
    except (KeyError, IndexError, TypeError, ValueError):
        return None
