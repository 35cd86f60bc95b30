"""Progress that suits where the output goes.

On a terminal: tqdm bars. In a log file or a pipe, carriage-return bar updates pile up on one
line, so there a bar becomes a few plain lines instead (start, every quarter or 30 s, end), each
ending in a newline. Either way an error printed afterwards starts on a line of its own
(:func:`close_all` clears any bar still drawn)."""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Iterable, Iterator

from tqdm import tqdm


def interactive() -> bool:
    """Whether progress goes to a terminal (stderr, where tqdm draws)."""
    return hasattr(sys.stderr, "isatty") and sys.stderr.isatty()


class LineProgress:
    """The subset of tqdm that rtseg uses, writing whole lines to stderr: at the start, at every
    quarter of ``total`` (or every ``interval`` s when the total is unknown) and at the end."""

    def __init__(self, iterable: Iterable | None = None, *, desc: str = "", total: int | None = None,
                 unit: str = "it", interval: float = 30.0) -> None:
        self.iterable = iterable
        self.desc, self.unit, self.interval = desc, unit, interval
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total = total
        self.n = 0
        self.postfix = ""
        self.start = self.last = time.perf_counter()
        self.next_quarter = 1
        self.closed = False
        self._line(f"{desc}: 0/{total} {unit}" if total else f"{desc}: started")

    def _line(self, text: str) -> None:
        write_line(text)

    def _status(self) -> str:
        elapsed = time.perf_counter() - self.start
        rate = self.n / elapsed if elapsed > 0 else 0.0
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        return f"{self.desc}: {done} {self.unit}, {elapsed:.0f} s, {rate:.2f} {self.unit}/s" + \
            (f", {self.postfix}" if self.postfix else "")

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if self.total:
            if self.n < self.total and self.n * 4 >= self.next_quarter * self.total:
                while self.n * 4 >= self.next_quarter * self.total:
                    self.next_quarter += 1
                self._line(self._status())
        elif now - self.last >= self.interval:
            self.last = now
            self._line(self._status())

    def set_postfix(self, **values) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._line(self._status() + " (done)" if not self.total or self.n >= self.total else self._status())

    def __iter__(self) -> Iterator:
        for item in self.iterable:
            yield item
            self.update()
        self.close()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress_bar(iterable: Iterable | None = None, *, desc: str = "", total: int | None = None, unit: str = "it",
                 progress: bool = True, leave: bool = False):
    """A tqdm bar on a terminal, :class:`LineProgress` elsewhere; ``progress=False``: silent, as
    in every process but the first of a distributed run (torchrun's RANK > 0). ``progress`` is
    the one name of the switch everywhere (``run.progress``, ``evaluate(progress=)``, ...)."""
    if not progress or int(os.environ.get("RANK", "0")) > 0:
        return tqdm(iterable, total=total, disable=True)
    if interactive():
        return tqdm(iterable, desc=desc, total=total, unit=unit, leave=leave, dynamic_ncols=True)
    return LineProgress(iterable, desc=desc, total=total, unit=unit)


def write_line(text: str, stream=None) -> None:
    """``text`` and its newline to ``stream`` (stderr) in one ``os.write``.

    Every process of a torchrun job shares one stderr; a line written in pieces (``print`` sends
    the text and the newline separately when Python's streams are unbuffered) can have another
    rank's line land inside it. One write of a whole line is atomic on a pipe up to PIPE_BUF
    (4096) bytes, and on a terminal or an appended file in practice. A stream without a file
    descriptor (pytest's capture, a StringIO) gets a plain write."""
    stream = sys.stderr if stream is None else stream
    line = text.rstrip("\n") + "\n"
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        stream.write(line)
        stream.flush()
        return
    stream.flush()  # whatever Python still holds for this stream goes first
    data = line.encode(getattr(stream, "encoding", None) or "utf-8", errors="backslashreplace")
    while data:  # only a line longer than PIPE_BUF, or a signal, leaves a remainder
        data = data[os.write(fd, data):]


def print_line(message: str) -> None:
    """A line of output to stdout that does not tear a bar being drawn (:func:`write_line`
    writes to stderr, in one system call)."""
    tqdm.write(message)


def close_all() -> None:
    """Close every tqdm bar still open (an exception left it mid-line), so that what is printed
    next starts on a fresh line."""
    for bar in list(getattr(tqdm, "_instances", ())):
        try:
            bar.close()
        except Exception:  # pragma: no cover - a bar in a broken state must not hide the error
            pass
    if interactive():
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()
