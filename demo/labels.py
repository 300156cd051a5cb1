"""`mlmon demo-labels`: the demo's labelling job, feeding its delayed labels as they arrive.

`mlmon traffic --labels-out FILE --label-delay-s D` appends the truth of each request the demo
answered, with the time that truth becomes known (`arrived_at`, D/2 to 3D/2 after the answer).
Every `--every-s` seconds this job takes the labels that have arrived since its last run and
feeds them with the real command, as a scheduled labelling job in production would:

    mlmon outcomes <the arrived rows> --id-column request_id --label-column target \\
        --arrived-column arrived_at --profile <champion> --profile <challenger> \\
        --es-url ... --pushgateway ...

so each label is written onto the champion's record and the challenger's (shadow mode), and
counted into the outcome series through the Pushgateway (one group per run). The arrived rows
are the file's whole lines from the job's cursor up to the first label not arrived yet (a
label waits behind one that arrives later, as in a feed delivered in order). A run that fails
(Elasticsearch or the Pushgateway unreachable) leaves the cursor where it was, so the next round
feeds the same rows again: the labels it had written count as `duplicate` then, as when a user
runs the command again. The cursor (a byte offset) is kept in `--state-dir`, so a restarted job
does not feed the file again; a round with nothing arrived runs nothing (no empty group).
A heartbeat file is touched after each round that fed its rows or had none to feed (the
compose healthcheck: a job whose every run fails turns unhealthy); `--rounds N` exits 1 when
its last run failed.
`--model risk` feeds the classifier demo's labels (`mlmon traffic --model risk` writes its
classes) with its two profiles, as `--model` selects the model of `mlmon demo`.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mlmon.demo.cli import PROGRESSION, RISK
from mlmon.demo.rounds import add_round_arguments, run_rounds
from mlmon.demo.traffic import LABEL_COLUMNS
from mlmon.exporter.pushgateway import PUSHGATEWAY_ENV

if TYPE_CHECKING:
    from mlmon.exporter.profile import Profile

ID_COLUMN, LABEL_COLUMN, ARRIVED_COLUMN = LABEL_COLUMNS
ARRIVED_FILE = "arrived.csv"  # in the state dir: the rows one run feeds
CURSOR_FILE = "cursor"
RUN_TIMEOUT_S = 600.0  # one `mlmon outcomes` run; it retries Elasticsearch for less than this
_log = logging.getLogger("mlmon.demo.labels")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument("--labels", type=Path, required=True,
                        help="the file `mlmon traffic --labels-out` appends to")
    parser.add_argument("--state-dir", type=Path,
                        help="the cursor, the profiles and each run's rows (default: "
                             "<labels>.feed beside the labels file)")
    parser.add_argument("--es-url", default=env("MLMON_ES_URL"),
                        help="Elasticsearch URL (env MLMON_ES_URL; credentials from "
                             "MLMON_ES_USER / MLMON_ES_PASSWORD, as `mlmon outcomes`)")
    parser.add_argument("--pushgateway", default=env(PUSHGATEWAY_ENV),
                        help=f"Pushgateway URL (env {PUSHGATEWAY_ENV})")
    parser.add_argument("--model", choices=(PROGRESSION, RISK), default=PROGRESSION,
                        help="the demo model whose labels these are (`mlmon demo --model`): "
                             "its champion's and its challenger's profiles are fed "
                             "(default %(default)s)")
    add_round_arguments(parser, every_s=60.0)


def arrived(labels: Path, offset: int, now: float) -> tuple[bytes, int]:
    """The rows of `labels` from byte `offset` whose `arrived_at` is at or before `now`, and
    the offset after them. Only whole lines (the writer may be halfway through one), up to the
    first label not arrived yet. A row whose arrival is not a number counts as arrived: the
    command counts it (`bad_arrival`) rather than this job holding the feed behind it. At
    offset 0 the header is skipped; a file shorter than `offset` (replaced) starts over.
    A file that cannot be read (a directory, no permission) raises CliError naming --labels:
    no later round would read it either."""
    from mlmon.errors import CliError

    try:
        with open(labels, "rb") as fh:
            if offset > os.fstat(fh.fileno()).st_size:
                _log.warning("%s is shorter than the cursor (%d bytes): a new file, read from "
                             "its start", labels, offset)
                offset = 0
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:  # the traffic has not answered a request yet
        return b"", offset
    except OSError as exc:
        raise CliError(f"--labels {labels}: {exc.strerror or exc}") from exc
    start = 0
    if offset == 0:
        start = data.find(b"\n") + 1
        if start == 0:  # not even the header, whole
            return b"", 0
    end = start
    while (line_end := data.find(b"\n", end)) >= 0:
        if _arrival(data[end:line_end]) > now:
            break
        end = line_end + 1
    return data[start:end], offset + end


def _arrival(line: bytes) -> float:
    row = next(csv.reader([line.decode("utf-8", "replace")]), [])
    try:
        return float(row[LABEL_COLUMNS.index(ARRIVED_COLUMN)])
    except (IndexError, ValueError):
        return float("-inf")


def outcomes_command(rows_file: Path, profiles: list[Path], es_url: str,
                     pushgateway: str) -> list[str]:
    """The `mlmon outcomes` command line one run executes."""
    command = [sys.executable, "-m", "mlmon.cli", "outcomes", str(rows_file),
               "--id-column", ID_COLUMN, "--label-column", LABEL_COLUMN,
               "--arrived-column", ARRIVED_COLUMN]
    for profile in profiles:
        command += ["--profile", str(profile)]
    return [*command, "--es-url", es_url, "--pushgateway", pushgateway]


def feed(labels: Path, state: Path, command: list[str], now: float) -> int | None:
    """One round: feed what arrived since the cursor with `command` (which reads
    `state/ARRIVED_FILE`); the cursor moves only when the run succeeds. The number of rows fed,
    or None when the run failed."""
    cursor_file = state / CURSOR_FILE
    offset = _cursor(cursor_file)
    rows, end = arrived(labels, offset, now)
    if not rows:
        if end != offset:  # skipped the header
            _save_cursor(cursor_file, end)
        return 0
    (state / ARRIVED_FILE).write_bytes(",".join(LABEL_COLUMNS).encode() + b"\n" + rows)
    try:
        done = subprocess.run(command, timeout=RUN_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        _log.error("mlmon outcomes did not end within %g s: its rows are fed again next round",
                   RUN_TIMEOUT_S)
        return None
    if done.returncode != 0:
        _log.error("mlmon outcomes exited with %d (above): its rows are fed again next round",
                   done.returncode)
        return None
    _save_cursor(cursor_file, end)
    return rows.count(b"\n")


def _cursor(path: Path) -> int:
    """The saved offset; 0 without one. A damaged one (a disk filled mid-write) starts over:
    the labels fed already count as `duplicate` then, which the summary and the rejected
    counts show, rather than labels never fed."""
    try:
        return int(path.read_text())
    except FileNotFoundError:
        return 0
    except ValueError:
        _log.warning("%s holds no offset: feeding the labels file from its start", path)
        return 0


def _save_cursor(path: Path, offset: int) -> None:
    """Replaced whole (a crash leaves the old offset or the new one, never half of one)."""
    part = path.with_name(path.name + ".part")
    part.write_text(str(offset))
    os.replace(part, path)


def profiles(model: str) -> list[Profile]:
    """The profiles the demo `model` serves: its champion's first, then its challenger's."""
    from mlmon.demo import model as demo

    if model == RISK:
        return [demo.build_risk_profile(m)
                for m in (demo.train_risk(), demo.train_risk_challenger())]
    return [demo.build_profile(m) for m in (demo.train(), demo.train_challenger())]


def run(args: argparse.Namespace) -> int:
    from mlmon.errors import CliError

    if not args.es_url:
        raise CliError("no Elasticsearch URL: pass --es-url or set MLMON_ES_URL")
    if not args.pushgateway:
        raise CliError(f"--pushgateway URL is required (or set {PUSHGATEWAY_ENV})")
    if not args.every_s > 0:
        raise CliError(f"--every-s must be > 0, got {args.every_s}")
    state = args.state_dir or args.labels.with_name(args.labels.name + ".feed")
    try:
        state.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"--state-dir {state}: {exc.strerror or exc}") from exc
    logging.basicConfig(level=logging.INFO, format="mlmon demo-labels: %(message)s")
    paths = []
    for profile in profiles(args.model):
        path = state / f"profile-{profile.model_version}.json"
        profile.dump(path)
        paths.append(path)
    command = outcomes_command(state / ARRIVED_FILE, paths, args.es_url, args.pushgateway)

    missing = [False]  # said once that the file is not there, until it is

    def one_round() -> bool:
        if not args.labels.exists():
            if not missing[0]:
                _log.warning("--labels %s does not exist (yet): waiting for `mlmon traffic "
                             "--labels-out` to write it (check the path if it never comes)",
                             args.labels)
            missing[0] = True
            return True  # nothing to do
        missing[0] = False
        fed = feed(args.labels, state, command, time.time())
        if fed == 0:
            _log.info("no label arrived since the last run")
        return fed is not None

    return run_rounds(one_round, args)
