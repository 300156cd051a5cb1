"""mlmon: monitoring for machine-learning models in production (one subcommand per part).

One entry point, one module per subcommand. Each subcommand module exposes
`add_arguments(parser)` and `run(args) -> int`. Modules are imported only when their
subcommand runs, so `mlmon profile` never pays for the log shipper's imports and a missing
optional dependency only affects the subcommand that needs it.

A subcommand that needs an optional dependency names its extra (`EXTRAS`): when a module of
that extra is missing, whether at import or inside `run`, the command prints one line naming
the module and `pip install 'mlmon[EXTRA]'` instead of a traceback.

Errors a user can fix (bad data, a corrupt profile, an unreachable server) are raised as
`CliError` or `ProfileError` and printed as one line, with exit status 2; never a traceback.
A reader that stops early (`mlmon es-setup --print | head`) ends the command quietly with the
status of a process killed by SIGPIPE, as standard tools do.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Sequence

from mlmon import __version__
from mlmon.errors import CliError

# name -> (module, one-line help). Configuration as data: adding a subcommand is one line here.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "profile": ("mlmon.profiling.cli", "build a reference profile from training data"),
    "serve": ("mlmon.exporter.cli_serve",
              "serve /metrics for a profile (optional synthetic traffic)"),
    "demo": ("mlmon.demo.cli", "run the demo model service (FastAPI) with exporter and shipper"),
    "traffic": ("mlmon.demo.traffic",
                "send steady traffic and scheduled drift to the demo service"),
    "demo-jobs": ("mlmon.demo.jobs",
                  "the demo's scheduled batch scoring and retraining, pushed to the Pushgateway"),
    "demo-labels": ("mlmon.demo.labels",
                    "the demo's labelling job: feed its delayed labels with `mlmon outcomes`"),
    "es-setup": ("mlmon.log_shipper.cli_es",
                 "install the Elasticsearch index template and data stream"),
    "kibana-objects": ("mlmon.log_shipper.cli_kibana", "generate or import Kibana saved objects"),
    "outcomes": ("mlmon.outcomes.cli",
                 "join delayed labels to the stored predictions and count them (Pushgateway)"),
    "sink": ("mlmon.alerting.sink", "receive Alertmanager webhooks and print / record them"),
    "training-run": ("mlmon.exporter.cli_training",
                     "report a training run (success or failure) to the Pushgateway"),
    "batch": ("mlmon.batch.cli",
              "monitor a scored batch file: counts to the Pushgateway, rows to Elasticsearch"),
}

# The subcommands that need one of pyproject's optional-dependency groups (an "extra"), and
# which. The others run with the core dependencies alone (tests/test_wheel.py installs both ways).
EXTRAS: dict[str, str] = {
    "profile": "data",
    "outcomes": "data",
    "batch": "data",
    "demo": "demo",
    "traffic": "demo",
    "demo-jobs": "demo",
    "demo-labels": "demo",
}


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlmon", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"mlmon {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (_module, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _build_parser()
    if not argv or argv[0] not in SUBCOMMANDS:
        parser.parse_args(argv)  # prints usage / help and exits
        return 2
    name, rest = argv[0], argv[1:]
    module_name, help_text = SUBCOMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        return _missing_dependency(name, exc)
    sub_parser = argparse.ArgumentParser(prog=f"mlmon {name}", description=help_text)
    module.add_arguments(sub_parser)
    args = sub_parser.parse_args(rest)
    from mlmon.exporter.profile import ProfileError

    try:
        status = int(module.run(args) or 0)
        sys.stdout.flush()  # a broken pipe must surface here, not at interpreter exit
        return status
    except BrokenPipeError:
        return _reader_went_away()
    except (CliError, ProfileError) as exc:
        print(f"mlmon {name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except ModuleNotFoundError as exc:  # an optional dependency imported where it is used
        return _missing_dependency(name, exc)


def _missing_dependency(command: str, exc: ModuleNotFoundError) -> int:
    """One line naming the missing module and what installs it. A missing `mlmon` module is a
    broken install or a bug, not a user's choice of extras: that one raises."""
    missing = exc.name or ""
    if not missing or missing.partition(".")[0] == "mlmon":
        raise exc
    extra = EXTRAS.get(command)
    # Without an extra, a core dependency is missing (or too old to have that module).
    install = f"pip install 'mlmon[{extra}]'" if extra else "pip install --force-reinstall mlmon"
    print(f"mlmon {command}: needs the module {missing!r}, which is not installed; "
          f"install it with: {install}", file=sys.stderr)
    return 2


def _reader_went_away() -> int:
    """The exit status of a process killed by SIGPIPE, after pointing stdout at /dev/null so
    that the interpreter's final flush of what is still buffered cannot fail again (the recipe
    of Python's `signal` documentation, note on SIGPIPE)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
