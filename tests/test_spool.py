"""The disk spool: order, restart, torn writes, bounds, fsync policy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlmon.log_shipper.spool import Spool, SpoolLockedError, decode_line, encode_line

REPO = Path(__file__).resolve().parents[1]


def _drain(spool: Spool) -> list[bytes]:
    out: list[bytes] = []
    for _ in range(1000):  # bounded: a spool that never empties fails the test, not hangs it
        if not spool:
            return out
        batch = spool.peek(3, 1 << 20)
        out.extend(batch.records)
        spool.ack(batch.end)
    raise AssertionError("the spool never emptied")


def test_records_come_back_in_order_across_segments(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=64)
    records = [b'{"n": %d}' % i for i in range(20)]
    for i in range(0, 20, 4):
        assert spool.append(records[i:i + 4]) == 4
    assert len(list(tmp_path.glob("*.seg"))) > 2
    assert _drain(spool) == records
    assert spool.pending_bytes == 0 and not spool
    # finished segments are deleted (the one still open for appending stays)
    assert len(list(tmp_path.glob("*.seg"))) == 1


def test_peek_does_not_consume_and_respects_limits(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append([b"a" * 10, b"b" * 10, b"c" * 10])
    assert spool.peek(2, 1 << 20).records == [b"a" * 10, b"b" * 10]
    # Bounded in bytes including the record that would cross the bound: it waits for the next.
    assert spool.peek(10, 15).records == [b"a" * 10]
    assert spool.peek(10, 20).records == [b"a" * 10, b"b" * 10]
    assert spool.peek(10, 5).records == [b"a" * 10]  # alone, a record goes however large
    assert spool.peek(1, 1 << 20).records == [b"a" * 10]


def test_a_restart_replays_what_was_not_acknowledged(tmp_path: Path) -> None:
    first = Spool(tmp_path)
    first.append([b"1", b"2", b"3"])
    batch = first.peek(1, 1 << 20)
    first.ack(batch.end)  # "1" delivered
    first.close()
    second = Spool(tmp_path)
    second.append([b"4"])
    assert _drain(second) == [b"2", b"3", b"4"]


def test_finishing_an_old_segment_keeps_counting_the_new_one(tmp_path: Path) -> None:
    first = Spool(tmp_path)
    first.append([b"1", b"2"])
    first.close()
    second = Spool(tmp_path)
    second.append([b"3"])  # a new segment
    batch = second.peek(2, 1 << 20)
    assert batch.records == [b"1", b"2"]
    second.ack(batch.end)  # the old segment is finished and deleted
    assert second.pending_bytes > 0
    assert second.peek(10, 1 << 20).records == [b"3"]


def test_a_lost_cursor_replays_everything_rather_than_losing(tmp_path: Path) -> None:
    first = Spool(tmp_path)
    first.append([b"1", b"2"])
    first.ack(first.peek(1, 1 << 20).end)
    first.close()
    (tmp_path / "cursor.json").write_text("{torn")
    assert _drain(Spool(tmp_path)) == [b"1", b"2"]


def test_a_torn_tail_is_skipped_and_counted_not_replayed(tmp_path: Path) -> None:
    first = Spool(tmp_path)
    first.append([b'{"ok": 1}', b'{"ok": 2}'])
    first.close()
    (segment,) = tmp_path.glob("*.seg")
    with open(segment, "ab") as f:  # a crash in the middle of writing the third record
        f.write(encode_line(b'{"ok": 3}')[:-5])
    second = Spool(tmp_path)
    second.append([b'{"ok": 4}'])
    assert _drain(second) == [b'{"ok": 1}', b'{"ok": 2}', b'{"ok": 4}']
    assert second.corrupt == 1


def test_a_flipped_byte_fails_the_checksum(tmp_path: Path) -> None:
    line = encode_line(b'{"v": 12}')
    assert decode_line(line) == b'{"v": 12}'
    assert decode_line(line.replace(b"12", b"13")) is None
    assert decode_line(line[:-1]) is None
    assert decode_line(b"zz 3 abc\n") is None


def test_the_size_bound_refuses_what_does_not_fit(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=100)
    written = spool.append([b"x" * 30] * 5)
    assert 0 < written < 5
    assert spool.pending_bytes <= 100
    spool.ack(spool.peek(100, 1 << 20).end)
    assert spool.append([b"x" * 30]) == 1  # acknowledged bytes free room


@pytest.mark.parametrize(("policy", "expected"), [("always", 3), ("never", 0)])
def test_fsync_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: str,
                      expected: int) -> None:
    calls: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real_fsync(fd)))
    spool = Spool(tmp_path, fsync=policy)
    for i in range(3):
        spool.append([b"%d" % i])
    files = len(calls) - (1 if policy == "always" else 0)  # `always` also syncs the directory
    assert files == expected


def test_fsync_interval_uses_the_injected_clock(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    calls: list[int] = []
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd))
    spool = Spool(tmp_path, fsync="interval", fsync_interval_s=1.0, clock=lambda: now[0])
    spool.append([b"a"])
    spool.append([b"b"])
    assert calls == []
    now[0] = 1.5
    spool.tick()
    assert len(calls) == 1


def test_bad_policy_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fsync"):
        Spool(tmp_path, fsync="sometimes")


# A second real process holding a spool directory (what a second gunicorn worker would be).
_HOLDER = ("import sys; from mlmon.log_shipper.spool import Spool; s = Spool(sys.argv[1]); "
           "s.append([b'held']); print('ready', flush=True); sys.stdin.read(); s.close()")


def test_a_directory_held_by_another_process_is_refused(tmp_path: Path) -> None:
    # Two processes on one directory would delete each other's segments on ack: refuse loudly.
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path)], cwd=REPO,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "ready\n"
        with pytest.raises(SpoolLockedError, match=f"in use \\(held by pid {holder.pid}\\)"):
            Spool(tmp_path)
    finally:
        holder.communicate("", timeout=30)
    assert holder.returncode == 0
    spool = Spool(tmp_path)  # free again once the holder is gone: its record is still there
    assert _drain(spool) == [b"held"]


def test_one_process_cannot_open_a_directory_twice_and_close_releases_it(
        tmp_path: Path) -> None:
    first = Spool(tmp_path)
    with pytest.raises(SpoolLockedError):
        Spool(tmp_path)
    first.close()
    first.close()  # idempotent
    Spool(tmp_path).close()
