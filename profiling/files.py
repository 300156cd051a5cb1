"""Reading CSV and Parquet files in chunks, with an optional progress bar on stderr.

Null cells are the ones pandas reads as NaN (empty, `NA`, `null`, `NaN`, `None`, ...), so a file
profiles the same as `pd.read_csv(path)` given to `profile_data`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator, Sequence
from typing import IO, Any

import pandas as pd

from mlmon.profiling.columns import ProfilingError

CSV, PARQUET = "csv", "parquet"
# Rows read first to infer the column kinds: a fixed number, not the chunk size, so that
# `--chunk-rows` changes memory use and speed, never a profile.
INFERENCE_ROWS = 100_000
_SUFFIXES = {".csv": CSV, ".parquet": PARQUET, ".pq": PARQUET}


def file_format(path: str | os.PathLike[str]) -> str:
    """csv or parquet, from the file name."""
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix not in _SUFFIXES:
        raise ProfilingError(f"unsupported file type {suffix!r}; use .csv or .parquet")
    return _SUFFIXES[suffix]


def read_head(path: str | os.PathLike[str], rows: int) -> pd.DataFrame:
    """The first `rows` rows, parsed the default way: used to infer the column kinds."""
    return next(iter(read_chunks(path, rows, string_columns=())))


def read_chunks(
    path: str | os.PathLike[str],
    rows: int,
    string_columns: Sequence[str],
    progress: Progress | None = None,
    columns: Sequence[str] | None = None,
) -> Iterator[pd.DataFrame]:
    """DataFrames of at most `rows` rows; `string_columns` are read as text, not re-guessed.

    `columns`: read only these (each is parsed as it would be alongside the others).
    """
    with _read_errors(path):
        if file_format(path) == CSV:
            yield from _csv_chunks(path, rows, string_columns, progress, columns)
        else:
            yield from _parquet_chunks(path, rows, progress, columns)


def file_columns(path: str | os.PathLike[str]) -> list[str]:
    """The column names of a CSV's header or a Parquet file's schema, without reading a row.

    A file that cannot be read raises ProfilingError with the same one-line reasons as
    `read_chunks` (a file with a header and no rows has columns: `read_chunks` refuses it).
    """
    with _read_errors(path):
        if file_format(path) == CSV:
            return [str(c) for c in pd.read_csv(path, nrows=0, encoding="utf-8").columns]
        import pyarrow.parquet as pq  # only Parquet needs pyarrow

        _check_parquet_exists(path)
        return [str(n) for n in pq.ParquetFile(path).schema_arrow.names]


@contextlib.contextmanager
def _read_errors(path: str | os.PathLike[str]) -> Iterator[None]:
    """Whatever reading `path` raises, as a ProfilingError of one line saying why."""
    try:
        yield
    except ProfilingError:
        raise
    except OSError as exc:
        raise ProfilingError(f"cannot read: {exc.strerror or exc}") from exc
    except pd.errors.EmptyDataError as exc:
        raise ProfilingError("the file is empty") from exc
    except UnicodeDecodeError as exc:
        # exc.start counts from the start of the parser's buffer, not of the file: find the spot.
        raise ProfilingError(f"not UTF-8 text: {_utf8_error(path) or exc.reason}") from exc
    except (pd.errors.ParserError, ValueError) as exc:
        # pyarrow's ArrowInvalid is a ValueError too; its messages can span lines.
        detail = " ".join(str(exc).split())
        kind = "CSV" if file_format(path) == CSV else "Parquet"
        raise ProfilingError(f"not a valid {kind} file: {detail}") from exc


def _check_parquet_exists(path: str | os.PathLike[str]) -> None:
    if not os.path.isfile(path):  # pyarrow's own message for a missing file is long
        raise ProfilingError("cannot read: no such file")


def _csv_chunks(
    path: str | os.PathLike[str],
    rows: int,
    string_columns: Sequence[str],
    progress: Progress | None,
    columns: Sequence[str] | None = None,
) -> Iterator[pd.DataFrame]:
    with open(path, "rb") as fh:
        if progress:
            progress.start(os.fstat(fh.fileno()).st_size, _position(fh))
        # No dtype at all when none is forced: with pandas 2 even an empty mapping makes the C
        # parser hold each chunk several times over (5x the head's frame, measured with
        # tracemalloc on pandas 2.2.3; no difference on pandas 3).
        dtype: Any = {name: str for name in string_columns} or None
        seen = 0
        usecols = None if columns is None else list(columns)
        with pd.read_csv(fh, chunksize=rows, dtype=dtype, encoding="utf-8",
                         usecols=usecols) as reader:
            for chunk in reader:
                if chunk.empty:  # a header-only file still yields one empty chunk
                    continue
                seen += len(chunk)
                if progress:
                    progress.update(seen)
                yield chunk
        if not seen:
            raise ProfilingError("no data rows (only a header)")


def _parquet_chunks(
    path: str | os.PathLike[str], rows: int, progress: Progress | None,
    columns: Sequence[str] | None = None,
) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet as pq  # only Parquet needs pyarrow

    _check_parquet_exists(path)
    parquet = pq.ParquetFile(path)
    total = parquet.metadata.num_rows
    if progress:
        progress.start(total, lambda seen: seen)
    if not total:
        raise ProfilingError("no data rows")
    seen = 0
    names = None if columns is None else list(columns)
    for batch in parquet.iter_batches(batch_size=rows, columns=names):
        seen += batch.num_rows
        if progress:
            progress.update(seen)
        yield batch.to_pandas()


def _utf8_error(path: str | os.PathLike[str], block: int = 1 << 20) -> str | None:
    """Where the first byte that is not UTF-8 is: 'byte 0xff at offset 6 (line 2): ...'."""
    done, lines, carry = 0, 1, b""
    with open(path, "rb") as fh:
        while True:
            more = fh.read(block)
            data = carry + more
            if not data:
                return None
            try:
                data.decode("utf-8")
                carry = b""
            except UnicodeDecodeError as exc:
                if exc.reason == "unexpected end of data" and more:
                    carry = data[exc.start:]  # a character cut by the block boundary
                    data = data[:exc.start]
                else:
                    at, byte = done + exc.start, data[exc.start]
                    line = lines + data.count(b"\n", 0, exc.start)
                    return f"byte 0x{byte:02x} at offset {at} (line {line}): {exc.reason}"
            done += len(data)
            lines += data.count(b"\n")
            if not more:
                return None


def _position(fh: IO[bytes]) -> Any:
    """Bytes the CSV parser has consumed so far: its file position."""
    return lambda _seen: fh.tell()


class Progress:
    """A one-line progress bar on stderr, redrawn at most a few times a second."""

    def __init__(self, label: str, stream: IO[str] | None = None, interval_s: float = 0.25):
        self.label = label
        self.stream = stream or sys.stderr
        self.interval_s = interval_s
        self._total = 0
        self._done: Any = None
        self._last = 0.0
        self._rows = 0

    def start(self, total: int, done: Any) -> None:
        """`total` units of work; `done(rows_seen)` says how many are done."""
        self._total, self._done = total, done
        self._last = time.monotonic()
        self._draw(0)

    def update(self, rows: int) -> None:
        self._rows = rows
        now = time.monotonic()
        if now - self._last >= self.interval_s:
            self._last = now
            self._draw(rows)

    def finish(self) -> None:
        """Draw 100% and end the line."""
        if self._done is not None:
            self._draw(self._rows, final=True)
            self._done = None

    def close(self) -> None:
        """End the line of an unfinished bar, so an error message starts on its own line."""
        if self._done is not None:
            self.stream.write("\n")
            self.stream.flush()
            self._done = None

    def _draw(self, rows: int, final: bool = False) -> None:
        fraction = 1.0 if final or not self._total else min(self._done(rows) / self._total, 1.0)
        width = 30
        bar = "#" * int(fraction * width)
        end = "\n" if final else ""
        self.stream.write(f"\r{self.label} [{bar:<{width}}] {fraction:4.0%} {rows:,} rows{end}")
        self.stream.flush()
