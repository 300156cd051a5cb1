"""`mlmon traffic`: steady traffic to the demo service, then the scheduled drift scenario.

The loop is bounded by the schedule (healthy phase + drift phase) and sends to a loopback
address only, unless `--allow-remote` is given (docker-compose, where the service is `demo`
on the private compose network). Failed requests are counted, never fatal: the generator must
keep going while the service restarts.

`--labels-out labels.csv` gives each request a request id and appends, for each request the
service answered, its true target and when that truth becomes known
(`request_id,target,arrived_at`, Unix seconds): the delayed labels a user feeds to
`mlmon outcomes labels.csv --id-column request_id --label-column target ...` later, and the
demo's labelling job (`mlmon demo-labels`) feeds as they arrive. `--label-delay-s D` puts each
arrival D/2 to 3D/2 after the answer (uniform; 0: at the answer), as truth that trickles in.
The truth is the one the served model is trained on (`--model`, as `mlmon demo --model`): the
regression's target, or the classifier's class ("high" or "low", demo/model.py `risk_labels`);
a service whose /healthz names another model is refused, one line, before any request.
"""

from __future__ import annotations

import argparse
import csv
import ipaddress
import itertools
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mlmon.demo.cli import PROGRESSION, RISK
from mlmon.demo.scenario import Schedule, next_record

if TYPE_CHECKING:
    import pandas as pd

Sender = Callable[[dict[str, Any]], bool]
# Keys a record may carry beside its features: the request id to send, and the true target
# (with --labels-out). Neither is a feature: http_sender sends the id apart, with_labels takes
# the target out.
REQUEST_ID, TARGET = "__request_id__", "__target__"
# The columns --labels-out writes (mlmon demo-labels reads them by these names).
LABEL_COLUMNS = ("request_id", "target", "arrived_at")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default="http://127.0.0.1:8000",
                        help="the demo service base URL (default %(default)s)")
    parser.add_argument("--rate", type=float, default=10.0,
                        help="requests per second (default %(default)s)")
    parser.add_argument("--healthy-s", type=float, default=300.0,
                        help="seconds of reference-like traffic first (default %(default)s)")
    parser.add_argument("--drift-s", type=float, default=600.0,
                        help="seconds of drifted traffic after that (default %(default)s)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--wait-ready-s", type=float, default=60.0,
                        help="wait this long for /healthz first (default %(default)s)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow a non-loopback service address (for docker-compose)")
    parser.add_argument("--labels-out", type=Path, default=None,
                        help="give each request an id and append its true target to this CSV "
                             "(request_id,target,arrived_at): labels to feed to "
                             "`mlmon outcomes` or `mlmon demo-labels`")
    parser.add_argument("--model", choices=(PROGRESSION, RISK), default=PROGRESSION,
                        help="the model the service serves (`mlmon demo --model`), whose truth "
                             "--labels-out writes: progression, the target; risk, its class "
                             "(default %(default)s)")
    parser.add_argument("--label-delay-s", type=float, default=0.0,
                        help="with --labels-out: each truth arrives this long after its answer "
                             "on average, uniformly within 0.5x to 1.5x (default %(default)s)")
    parser.add_argument("--heartbeat", type=Path, default=None,
                        help="touch this file after successful requests (at most once a "
                             "second), for a healthcheck that reads its age")


def check_target(url: str, allow_remote: bool) -> None:
    """Refuse anything but http(s) to a loopback host unless remote targets are allowed."""
    from mlmon.errors import CliError

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CliError(f"--url must be an http(s) URL, got {url!r}")
    if allow_remote or parts.hostname == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise CliError(f"{parts.hostname} is not a loopback address (see --allow-remote)")


def drive(send: Sender, records: list[dict[str, Any]], schedule: Schedule, rate: float,
          rng: random.Random, clock: Callable[[], float] = time.monotonic,
          sleep: Callable[[float], None] = time.sleep,
          on_phase: Callable[[str], None] | None = None) -> Counter[str]:
    """Send records at `rate` per second until the schedule ends; counts `<phase>_ok|_failed`."""
    if rate <= 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    counts: Counter[str] = Counter()
    start = clock()
    current: str | None = None
    for i in range(int(schedule.duration_s * rate) + 1):
        # Pace against the start time, not the previous request, so slow requests do not
        # lower the average rate.
        due = start + i / rate
        now = clock()
        if due > now:
            sleep(due - now)
        phase = schedule.phase(clock() - start)
        if phase is None:
            break
        if phase != current:
            current = phase
            if on_phase is not None:
                on_phase(phase)
        ok = send(next_record(records, phase, rng))
        counts[f"{phase}_{'ok' if ok else 'failed'}"] += 1
    return counts


def http_sender(url: str, timeout_s: float = 5.0) -> Sender:
    import requests

    session = requests.Session()
    endpoint = url.rstrip("/") + "/predict"

    def send(record: dict[str, Any]) -> bool:
        features = dict(record)
        request_id = features.pop(REQUEST_ID, None)
        features.pop(TARGET, None)
        body: dict[str, Any] = {"features": features}
        if request_id is not None:
            body["request_id"] = request_id
        try:
            return session.post(endpoint, json=body, timeout=timeout_s).ok
        except requests.RequestException:
            return False

    return send


def truths(frame: pd.DataFrame, model: str) -> list[Any]:
    """The truth of each row of `frame` (demo/model.py `reference_frame`) for the demo `model`:
    the regression's `target`, or the classifier's class, by the rule it was trained on."""
    from mlmon.demo.model import risk_labels

    if model == RISK:
        classes: list[str] = risk_labels(frame["target"]).tolist()
        return classes
    return frame["target"].tolist()


def with_labels(send: Sender, path: Path, prefix: str,
                delay: Callable[[], float] = lambda: 0.0,
                clock: Callable[[], float] = time.time) -> Sender:
    """`send`, each record with a request id `<prefix>-<n>`; for each one answered, its
    `TARGET` is appended to the CSV `path` with its arrival, `clock()` + `delay()` when the
    answer came (header `LABEL_COLUMNS` when the file is new). Raises CliError when `path`
    holds another header (an older file: its rows would not line up), or cannot be opened
    for appending (a missing folder, no permission)."""
    from mlmon.errors import CliError

    try:
        fh = open(path, "a+", newline="", encoding="utf-8")  # noqa: SIM115 - lives with the sender
    except OSError as exc:
        raise CliError(f"--labels-out {path}: {exc.strerror or exc}") from exc
    fh.seek(0)
    header = fh.readline().rstrip("\r\n")
    if header and header != ",".join(LABEL_COLUMNS):
        fh.close()
        raise CliError(f"--labels-out {path}: its header is {header!r}, not "
                       f"{','.join(LABEL_COLUMNS)!r}: name another file")
    writer = csv.writer(fh)
    if not header:
        writer.writerow(LABEL_COLUMNS)
    numbers = itertools.count()

    def send_and_label(record: dict[str, Any]) -> bool:
        labelled = dict(record)
        target = labelled.pop(TARGET, None)
        labelled[REQUEST_ID] = request_id = f"{prefix}-{next(numbers)}"
        ok = send(labelled)
        if ok and target is not None:
            writer.writerow([request_id, target, f"{clock() + delay():.3f}"])
            fh.flush()  # a label is on disk once its prediction was answered
        return ok

    return send_and_label


def with_heartbeat(send: Sender, path: Path, every_s: float = 1.0,
                   clock: Callable[[], float] = time.monotonic) -> Sender:
    """`send`, touching `path` after a successful request, at most every `every_s` seconds.

    The file's age is the time since the service last answered, which is what a healthcheck
    of a client should report; a failed request leaves it alone.
    """
    last = [-math.inf]

    def send_and_beat(record: dict[str, Any]) -> bool:
        ok = send(record)
        now = clock()
        if ok and now - last[0] >= every_s:
            try:
                path.touch()
                last[0] = now
            except OSError:  # a full or read-only /tmp must not stop the traffic
                pass
        return ok

    return send_and_beat


def wait_ready(url: str, timeout_s: float) -> dict[str, Any] | None:
    """The service's /healthz answer (its `model` names the model it serves; {} when the
    answer is not a JSON object), or None when it did not answer within `timeout_s`."""
    import requests

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            answer = requests.get(url.rstrip("/") + "/healthz", timeout=2)
            if answer.ok:
                try:
                    body = answer.json()
                except ValueError:
                    body = None
                return body if isinstance(body, dict) else {}
        except requests.RequestException:
            pass
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.5)


def check_model(health: dict[str, Any], model: str, url: str) -> None:
    """Refuse a service that serves another model than `--model`: its labels would be the
    other model's truth (a regression's targets for a classifier), every one rejected."""
    from mlmon.demo.model import MODEL_NAME, RISK_MODEL_NAME
    from mlmon.errors import CliError

    names = {PROGRESSION: MODEL_NAME, RISK: RISK_MODEL_NAME}
    served = health.get("model")
    if served != names[model]:
        hint = next((f"; pass --model {choice}" for choice, name in names.items()
                     if name == served), "")
        raise CliError(f"--model {model}: the service at {url} serves model {served!r}, not "
                       f"{names[model]!r}{hint}")


def run(args: argparse.Namespace) -> int:
    from mlmon.demo.model import FEATURES, reference_frame
    from mlmon.errors import CliError

    check_target(args.url, args.allow_remote)
    try:
        schedule = Schedule(healthy_s=args.healthy_s, drift_s=args.drift_s)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    if args.rate <= 0:
        raise CliError(f"--rate must be > 0, got {args.rate}")
    if not args.label_delay_s >= 0:
        raise CliError(f"--label-delay-s must be >= 0, got {args.label_delay_s}")
    frame = reference_frame()
    records = frame[list(FEATURES)].to_dict(orient="records")

    def announce(phase: str) -> None:
        print(f"mlmon traffic: phase {phase} at {time.time():.3f}", file=sys.stderr, flush=True)

    send = http_sender(args.url)
    if args.labels_out is not None:
        for record, target in zip(records, truths(frame, args.model), strict=True):
            record[TARGET] = target
        # A run's own prefix: ids stay unique when the file collects several runs. The delays
        # draw from their own generator: the traffic stays the same with or without them.
        delays = random.Random(args.seed)
        mean = args.label_delay_s
        send = with_labels(send, args.labels_out, f"t{int(time.time())}-{args.seed}",
                           delay=lambda: delays.uniform(0.5 * mean, 1.5 * mean))
    if args.heartbeat is not None:
        send = with_heartbeat(send, args.heartbeat)
    # After every argument is checked (the labels file opened): a wrong one fails at once.
    health = wait_ready(args.url, args.wait_ready_s)
    if health is None:
        raise CliError(f"{args.url}/healthz did not answer within {args.wait_ready_s:g} s")
    check_model(health, args.model, args.url)
    counts = drive(send, records, schedule, args.rate,
                   random.Random(args.seed), on_phase=announce)
    print("mlmon traffic: done " + " ".join(f"{k}={v}" for k, v in sorted(counts.items())),
          file=sys.stderr, flush=True)
    return 0
