"""A supervised role: one background thread running a turn function until told to stop.

An unexpected exception in a turn never ends the role: it is logged (rate-limited), counted in
`restarts`, the role is down (`up` False) for a capped exponential backoff, then runs again.
The backoff resets after a clean turn, so a role that failed once long ago restarts quickly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from mlmon.log_shipper.sender import backoff_delay

log = logging.getLogger(__name__)

_LOG_EVERY_S = 10.0


class SupervisedRole:
    """Runs `turn()` again and again on its own daemon thread until `finished()` is True.

    >>> role = SupervisedRole("writer", turn=write_once, finished=lambda: closed and empty)
    >>> role.start(); ...; role.join(5.0)
    >>> role.up, role.restarts     # exported as mlmon_shipper_role_up / _restarts_total
    """

    def __init__(self, name: str, *, turn: Callable[[], None], finished: Callable[[], bool],
                 on_exit: Callable[[], None] = lambda: None, initial_backoff_s: float = 0.1,
                 max_backoff_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.up = False
        self.restarts = 0
        self._turn, self._finished, self._on_exit = turn, finished, on_exit
        self._initial_backoff_s, self._max_backoff_s = initial_backoff_s, max_backoff_s
        self._clock = clock
        self._next_log = 0.0
        self._wake = threading.Event()  # cuts a restart backoff short (close)
        self._thread: threading.Thread | None = None

    def start(self, thread_name: str) -> None:
        """Start the role's thread (once per process: a forked child calls it again)."""
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)
        self.up = True
        self._thread.start()

    def join(self, timeout: float) -> bool:
        """Wait for the role to finish; True when it did."""
        self._wake.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def is_running(self) -> bool:
        """True while the role's thread exists (up or backing off)."""
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        failures = 0
        try:
            while not self._finished():
                try:
                    self._turn()
                    failures = 0
                except Exception:  # noqa: BLE001 - a role never ends on an error: it restarts
                    failures += 1
                    self.restarts += 1
                    self.up = False
                    self._log_failure()
                    self._wake.wait(backoff_delay(failures, self._initial_backoff_s,
                                                  self._max_backoff_s))
                    self.up = True
        finally:
            self.up = False
            self._on_exit()

    def _log_failure(self) -> None:
        now = self._clock()
        if now >= self._next_log:
            self._next_log = now + _LOG_EVERY_S
            log.exception("mlmon shipper: the %s role failed (restart %d); restarting after a "
                          "backoff", self.name, self.restarts)
