"""The challenger in its own process: a child that dies, hangs or cannot load is counted and
replaced, never seen by the caller; `close()` ends the children.

The challenger functions are module-level: the child imports this module to load them.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from mlmon.log_shipper.facade import PredictionLogger
from mlmon.log_shipper.shadow import InThread
from mlmon.log_shipper.shadow_process import ChildPredict
from tests.test_shadow import FEATURES, _champion, _profiles, _value

AT = {"model_version": "4", "champion_version": "3"}


def dies_or_answers(features: Mapping[str, Any]) -> float:
    """Exits the child (as an out-of-memory kill would) on a request with `die`."""
    if features.get("die"):
        os._exit(3)
    return float(features["income"]) / 1000


def hangs_or_answers(features: Mapping[str, Any]) -> float:
    """Never answers a request with `hang` (a deadlocked model)."""
    if features.get("hang"):
        time.sleep(3600)
    return float(features["income"]) / 1000


def own_pid(features: Mapping[str, Any]) -> float:
    return float(os.getpid())


def own_niceness(features: Mapping[str, Any]) -> float:
    return float(os.nice(0))


class LoadsBadly:
    """Pickles fine in the serving process; loading it in the child raises."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (_refuse_to_load, ())

    def __call__(self, features: Mapping[str, Any]) -> float:
        return 0.0


def _refuse_to_load() -> Any:
    raise RuntimeError("model file missing")


def _runner(logger: PredictionLogger) -> ChildPredict:
    runner = logger.challengers[0].runners[0]
    assert isinstance(runner, ChildPredict)
    return runner


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_predict_runs_in_a_child_process_started_on_the_first_request() -> None:
    registry = CollectorRegistry()
    champion_profile, challenger_profile = _profiles()
    logger = _champion(champion_profile, registry)
    logger.add_challenger(challenger_profile, own_pid)
    runner = _runner(logger)
    assert runner.starts == 0  # nothing started until a request comes (e.g. before a fork)
    logger.record(FEATURES, 0.0)
    deadline = time.monotonic() + 60
    while runner.process is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process = runner.process
    assert process is not None and process.pid != os.getpid()
    assert logger.close()
    # its prediction came from the child; the child ended on its own when its input closed
    assert _value(registry, "mlmon_challenger_difference_sum", **AT) == process.pid
    assert process.returncode == 0 and _gone(process.pid)


def test_the_child_runs_at_a_lower_priority() -> None:
    # so that on a busy machine the kernel runs the requests before the challenger
    registry = CollectorRegistry()
    champion_profile, challenger_profile = _profiles()
    logger = _champion(champion_profile, registry)
    logger.add_challenger(challenger_profile, own_niceness, nice=7)
    logger.record(FEATURES, 0.0)
    assert logger.close(timeout=60)
    expected = min(19, os.nice(0) + 7)
    assert _value(registry, "mlmon_challenger_difference_sum", **AT) == expected


def test_a_child_that_dies_is_counted_and_replaced() -> None:
    registry = CollectorRegistry()
    champion_profile, challenger_profile = _profiles()
    logger = _champion(champion_profile, registry)
    logger.add_challenger(challenger_profile, dies_or_answers)
    logger.record(FEATURES, 1.5)
    assert logger.record({**FEATURES, "die": True}, 1.5) is not None  # the caller sees nothing
    logger.record(FEATURES, 1.5)
    assert logger.close()
    assert _value(registry, "mlmon_challenger_skipped_total", **AT, reason="process_died") == 1
    # the requests before and after it were compared: the second by a new child
    assert _value(registry, "mlmon_challenger_compared_total", **AT, agreement="agree") == 2
    assert _runner(logger).starts == 2
    assert _value(registry, "mlmon_requests_total", model_version="4", outcome="error") == 1
    assert logger.errors == 0


def test_a_child_that_hangs_is_killed_counted_and_replaced() -> None:
    registry = CollectorRegistry()
    champion_profile, challenger_profile = _profiles()
    logger = _champion(champion_profile, registry)
    logger.add_challenger(challenger_profile, hangs_or_answers, predict_timeout=3.0)
    runner = _runner(logger)
    logger.record(FEATURES, 1.5)
    deadline = time.monotonic() + 60
    while runner.process is None and time.monotonic() < deadline:
        time.sleep(0.05)
    hung = runner.process
    assert hung is not None
    logger.record({**FEATURES, "hang": True}, 1.5)
    logger.record(FEATURES, 1.5)
    assert logger.close(timeout=60)
    assert _value(registry, "mlmon_challenger_skipped_total", **AT,
                  reason="predict_timeout") == 1
    assert _value(registry, "mlmon_challenger_compared_total", **AT, agreement="agree") == 2
    assert runner.starts == 2
    assert hung.returncode is not None and _gone(hung.pid)  # killed, not left behind


def test_close_ends_a_hung_child_and_counts_what_it_left() -> None:
    registry = CollectorRegistry()
    champion_profile, challenger_profile = _profiles()
    logger = _champion(champion_profile, registry)
    challenger = logger.add_challenger(challenger_profile, hangs_or_answers,
                                       predict_timeout=600.0)
    runner = _runner(logger)
    logger.record(FEATURES, 1.5)
    logger.record({**FEATURES, "hang": True}, 1.5)
    deadline = time.monotonic() + 60
    while challenger.pending and time.monotonic() < deadline:  # the hang has been taken
        time.sleep(0.05)
    logger.record(FEATURES, 1.5)
    time.sleep(0.5)
    hung = runner.process
    assert hung is not None
    started = time.monotonic()
    challenger.close(timeout=2.0)
    # the request still in the child and the one behind it: closed, with no process left
    assert _value(registry, "mlmon_challenger_skipped_total", **AT, reason="closed") == 2
    assert time.monotonic() - started < 30  # not the 600 s predict timeout
    hung.wait(30)
    assert _gone(hung.pid)
    assert _value(registry, "mlmon_challenger_compared_total", **AT, agreement="agree") == 1


def test_a_challenger_that_cannot_load_in_its_process_backs_off() -> None:
    registry = CollectorRegistry()
    champion_profile, challenger_profile = _profiles()
    logger = _champion(champion_profile, registry)
    logger.add_challenger(challenger_profile, LoadsBadly())
    for _ in range(6):
        assert logger.record(FEATURES, 1.5) is not None
    assert logger.close(timeout=60)
    assert _value(registry, "mlmon_challenger_skipped_total", **AT, reason="process_died") == 6
    # one restart at once, then a backoff: the requests behind it do not start a process each
    assert _runner(logger).starts < 6


def _local_function() -> Any:
    def predict(features: Mapping[str, Any]) -> float:
        return 0.0
    return predict


def test_a_predict_a_child_cannot_load_is_refused_at_start_up(
        monkeypatch: pytest.MonkeyPatch) -> None:
    champion_profile, challenger_profile = _profiles()
    logger = _champion(champion_profile, CollectorRegistry())
    with pytest.raises(ValueError, match='isolation="thread"'):
        logger.add_challenger(challenger_profile, _local_function())
    # a class of the script that was run pickles here, but a child runs another __main__
    model = type("Model", (), {"__module__": "__main__", "__call__": own_pid})
    monkeypatch.setattr(sys.modules["__main__"], "Model", model, raising=False)
    main_predict = model()
    with pytest.raises(ValueError, match="__main__.Model"):
        logger.add_challenger(challenger_profile, main_predict)
    assert logger.challengers == []
    # in the worker thread it runs, unpickled
    challenger = logger.add_challenger(challenger_profile, _local_function(),
                                       isolation="thread")
    assert isinstance(challenger.runners[0], InThread)
    logger.close()


def test_a_forked_worker_starts_its_own_child(tmp_path) -> None:
    # gunicorn --preload: the parent started a child; a forked worker must neither use nor end
    # it, and gets its own on its first request
    import multiprocessing

    registry = CollectorRegistry()
    champion_profile, challenger_profile = _profiles()
    logger = _champion(champion_profile, registry)
    logger.add_challenger(challenger_profile, own_pid)
    runner = _runner(logger)
    logger.record(FEATURES, 0.0)
    deadline = time.monotonic() + 60
    while runner.process is None and time.monotonic() < deadline:
        time.sleep(0.05)
    parent_child = runner.process
    assert parent_child is not None
    out = tmp_path / "child.txt"

    def worker() -> None:
        own = logger.challengers[0].runners[0]
        assert isinstance(own, ChildPredict) and own.process is None  # not the parent's
        logger.record(FEATURES, 0.0)
        while own.process is None and time.monotonic() < deadline:
            time.sleep(0.05)
        pid = own.process.pid if own.process is not None else 0
        logger.close(timeout=60)
        out.write_text(f"{own.starts} {pid}")

    child = multiprocessing.get_context("fork").Process(target=worker)
    child.start()
    child.join(120)
    assert child.exitcode == 0
    starts, pid = out.read_text().split()
    assert starts == "1" and int(pid) not in (0, parent_child.pid)
    assert parent_child.poll() is None  # the parent's child lives on, still serving it
    logger.record(FEATURES, 0.0)
    assert logger.close()
    assert runner.starts == 1 and parent_child.returncode == 0
