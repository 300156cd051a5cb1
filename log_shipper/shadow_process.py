"""The challenger's predict in a child process: off the serving process's GIL and CPU share.

`ChildPredict` is the serving side of one child: called from a shadow worker thread
(log_shipper/shadow.py) with a request's features, it sends them to the child through a pipe
and waits for the answer, holding no lock meanwhile (the request threads run). The child is
started on the first call, in the process that calls (a forked server worker starts its own),
with `python -c` running `main()` below: a fresh interpreter, never a fork of a
threaded server. It loads the pickled `predict` and answers one request at a time:

    serving -> child   (sys.path, pickled predict), then one features dict per request
    child -> serving   ("ready",) | ("start_error", text), then ("ok", output, seconds) |
                       ("error", text) per request

Every message is an 8-byte big-endian length and a pickle. The child exits when its input
closes: at `close()`, and also when the serving process dies however it dies.

Failures raise `ChildFailed(reason)` in the worker thread, which counts them; a child that
exits or does not load is `process_died`, one that does not answer within the timeout is
`predict_timeout` (it is killed). The next child starts at once after one failure, after
capped exponential backoff after consecutive ones; until then requests are counted
`process_died` without waiting.
"""

from __future__ import annotations

import os
import pickle
import pickletools
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

from mlmon.exporter.challenger import CLOSED, PREDICT_ERROR, PREDICT_TIMEOUT, PROCESS_DIED

_HEADER = struct.Struct(">Q")
_READ_CHUNK = 1 << 20
# not `-m`: the package's __init__ imports this module before runpy would run it as __main__
_CHILD = "import sys; from mlmon.log_shipper.shadow_process import main; sys.exit(main())"
# The child's niceness over its serving process's. A woken child at the same niceness takes a
# CPU from the request that woke it (measured: p50 1.2-1.4x on a loaded 2-core machine);
# at +10 the kernel runs the requests first and the child in what is left, and it still kept
# up with 10 requests/s there (docs/challenger.md). When the CPU stays short, it falls behind
# and sheds (`queue_full`) instead of slowing the requests.
DEFAULT_NICE = 10


class ChildFailed(Exception):
    """The child gave no answer; `reason` is the skip reason to count."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def pickle_predict(predict: Callable[..., Any]) -> bytes:
    """`predict` pickled for a child; ValueError when a child could not load it."""
    hint = ("; pass isolation=\"thread\" to run it in the serving process's threads "
            "(docs/challenger.md)")
    try:
        payload = pickle.dumps(predict, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise ValueError(f"the challenger's predict cannot be pickled for its child process "
                         f"({exc}){hint}") from exc
    # a global of the script that was run pickles as module "__main__" then its name: the
    # child's __main__ is another one
    strings = (arg for op, arg, _ in pickletools.genops(payload)
               if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"))
    for string in strings:
        if string == "__main__":
            name = next(strings, "?")
            raise ValueError(f"the challenger's predict refers to __main__.{name}, defined in "
                             "the script that was run: its child process cannot import it; "
                             f"define it in an importable module{hint}")
    return payload


class ChildPredict:
    """`predict(features)` in a child process: `(output, seconds)` or `ChildFailed`.

    One caller at a time (its shadow worker thread); `kill()` may come from another thread.
    """

    def __init__(self, payload: bytes, *, timeout: float = 30.0, nice: int = DEFAULT_NICE,
                 start_timeout: float = 120.0, backoff: float = 0.5,
                 max_backoff: float = 60.0) -> None:
        self.payload = payload
        self.nice = nice
        self.timeout = timeout
        self.start_timeout = start_timeout
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.starts = 0  # children started (a restart is a start after the first)
        self.failures = 0  # consecutive failed children
        self._pid = os.getpid()
        self._child: subprocess.Popen[bytes] | None = None
        self._to_child = -1
        self._from_child = -1
        self._restart_at = 0.0
        self._killed = False
        self._lock = threading.Lock()  # between the caller and kill()

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The running child (None before the first call, after a failure or close)."""
        return self._child

    def __call__(self, features: dict[str, Any]) -> tuple[Any, float]:
        if self._killed:
            raise ChildFailed(CLOSED)
        try:
            request = _frame(features)
        except Exception as exc:  # noqa: BLE001 - e.g. a feature value that cannot pickle
            raise ChildFailed(PREDICT_ERROR, f"features cannot be pickled: {exc}") from exc
        if self._child is None:
            if time.monotonic() < self._restart_at:
                # waiting to restart: logged once, at the failure
                raise ChildFailed(PROCESS_DIED)
            self._spawn()
        try:
            self._send(request, time.monotonic() + self.timeout)
            answer = self._receive(time.monotonic() + self.timeout)
        except TimeoutError:
            self._fail(PREDICT_TIMEOUT, f"no answer within {self.timeout:g} s")
        except (EOFError, OSError) as exc:
            self._fail(PROCESS_DIED, f"exit code {self._exit_code()}: {exc}")
        self.failures = 0
        if answer[0] == "ok":
            return answer[1], float(answer[2])
        raise ChildFailed(PREDICT_ERROR, str(answer[1]))

    def _spawn(self) -> None:
        to_read, to_child = os.pipe()
        from_child, to_write = os.pipe()
        try:
            child = subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(to_read), str(to_write), str(self.nice)],
                pass_fds=(to_read, to_write), stdin=subprocess.DEVNULL)
        except OSError as exc:
            for fd in (to_read, to_child, from_child, to_write):
                os.close(fd)
            self._restart_at = time.monotonic() + self._next_backoff()
            raise ChildFailed(PROCESS_DIED, f"cannot start: {exc}") from exc
        os.close(to_read)
        os.close(to_write)
        os.set_blocking(to_child, False)  # writes wait in poll(), bounded by a deadline
        with self._lock:
            self._child, self._to_child, self._from_child = child, to_child, from_child
        self.starts += 1
        if self._killed:  # kill() came while it started
            self._fail(CLOSED, "")
        deadline = time.monotonic() + self.start_timeout
        try:
            self._send(_frame((list(sys.path), self.payload)), deadline)
            answer = self._receive(deadline)
        except TimeoutError:
            self._fail(PREDICT_TIMEOUT, f"not ready within {self.start_timeout:g} s")
        except (EOFError, OSError) as exc:
            self._fail(PROCESS_DIED, f"exit code {self._exit_code()}: {exc}")
        if answer[0] != "ready":
            self._fail(PROCESS_DIED, f"could not load predict:\n{answer[1]}")

    def _fail(self, reason: str, detail: str) -> NoReturn:
        """Stop the child and raise what to count (raises)."""
        with self._lock:
            if self._child is not None:
                self._child.kill()
        self.close()
        if self._killed:
            raise ChildFailed(CLOSED)
        self._restart_at = time.monotonic() + self._next_backoff()
        raise ChildFailed(reason, detail)

    def _next_backoff(self) -> float:
        self.failures += 1
        if self.failures == 1:
            return 0.0  # one crash: restart at once
        return float(min(self.max_backoff, self.backoff * 2 ** (self.failures - 2)))

    def _exit_code(self) -> int | None:
        child = self._child
        if child is None:
            return None
        try:
            return child.wait(1.0)
        except subprocess.TimeoutExpired:
            return None

    def _send(self, frame: bytes, deadline: float) -> None:
        view = memoryview(frame)
        poller = select.poll()  # not select(): a server's fds may be above FD_SETSIZE
        poller.register(self._to_child, select.POLLOUT)
        while view:
            if not poller.poll(_wait_ms(deadline)):
                raise TimeoutError
            try:
                view = view[os.write(self._to_child, view):]
            except BlockingIOError:
                continue

    def _receive(self, deadline: float) -> Any:
        poller = select.poll()
        poller.register(self._from_child, select.POLLIN)
        header = _read_exact(self._from_child, _HEADER.size, poller, deadline)
        return pickle.loads(_read_exact(self._from_child, _HEADER.unpack(header)[0], poller,
                                        deadline))

    def close(self, timeout: float = 5.0) -> None:
        """End the child (from the calling thread): close its input, so it exits; kill it
        after `timeout` seconds."""
        with self._lock:
            child, self._child = self._child, None
            fds, self._to_child, self._from_child = (self._to_child, self._from_child), -1, -1
        if child is None or self._pid != os.getpid():
            return  # a forked process's copy: the parent's child is not ours to end
        for fd in fds:
            os.close(fd)  # the child reads the end of its input and exits
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()

    def kill(self) -> None:
        """End the child now, from any thread: a call waiting on it wakes and raises
        `closed`, and closes the pipes itself (so no thread reads a closed, reused fd)."""
        self._killed = True
        with self._lock:
            if self._child is not None and self._pid == os.getpid():
                self._child.kill()

    def abandon(self) -> None:
        """In a forked process: let go of the parent's child (close our copies of its pipes)."""
        # a parent's thread may have held the lock at the fork: this process has only its own
        self._lock = threading.Lock()
        fds, self._to_child, self._from_child = (self._to_child, self._from_child), -1, -1
        self._child = None
        for fd in fds:
            if fd >= 0:
                os.close(fd)


def _wait_ms(deadline: float) -> int:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError
    return max(1, int(remaining * 1000))


def _read_exact(fd: int, n: int, poller: select.poll, deadline: float) -> bytes:
    chunks = []
    while n:
        if not poller.poll(_wait_ms(deadline)):
            raise TimeoutError
        chunk = os.read(fd, min(n, _READ_CHUNK))
        if not chunk:
            raise EOFError("the challenger's process closed its output")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _frame(message: Any) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


def _write_all(fd: int, frame: bytes) -> None:
    view = memoryview(frame)
    while view:
        view = view[os.write(fd, view):]


def _read_message(fd: int) -> Any:
    """The next message (blocking), or None at end of input."""
    header = b""
    while len(header) < _HEADER.size:
        chunk = os.read(fd, _HEADER.size - len(header))
        if not chunk:
            return None
        header += chunk
    size = _HEADER.unpack(header)[0]
    chunks = []
    while size:
        chunk = os.read(fd, min(size, _READ_CHUNK))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return pickle.loads(b"".join(chunks))


def main(argv: list[str] | None = None) -> int:
    """The child: load predict, then answer requests until the input closes."""
    args = sys.argv[1:] if argv is None else argv
    requests, answers, nice = int(args[0]), int(args[1]), int(args[2])
    # Ctrl+C reaches the whole process group: the serving process decides when we stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if nice:
        os.nice(nice)
    init = _read_message(requests)
    if init is None:
        return 0
    path, payload = init
    sys.path[:] = path  # the serving process's: predict's modules import the same way
    try:
        predict = pickle.loads(payload)
    except Exception:  # noqa: BLE001 - reported to the serving process, which counts it
        _write_all(answers, _frame(("start_error", traceback.format_exc())))
        return 1
    try:
        _write_all(answers, _frame(("ready",)))
        while (features := _read_message(requests)) is not None:
            _write_all(answers, _answer(predict, features))
    except BrokenPipeError:
        pass  # the serving process is gone
    return 0


def _answer(predict: Callable[[Any], Any], features: Any) -> bytes:
    start = time.perf_counter()
    try:
        output = predict(features)
        return _frame(("ok", output, time.perf_counter() - start))
    except Exception as exc:  # noqa: BLE001 - the challenger's failure, counted there
        return _frame(("error", f"{type(exc).__name__}: {exc}"))

if __name__ == "__main__":
    sys.exit(main())
