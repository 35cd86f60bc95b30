"""Progress in a log file or pipe: a few whole lines, no carriage returns."""

from __future__ import annotations

import os
import subprocess
import sys

import rtseg.progress
from rtseg.progress import LineProgress, progress_bar, write_line


def test_line_progress_writes_quarters(capsys):
    items = list(LineProgress(range(100), desc="work", unit="img"))
    assert items == list(range(100))
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "work: 0/100 img"
    assert [line.split()[1] for line in lines[1:]] == ["25/100", "50/100", "75/100", "100/100"]
    assert lines[-1].endswith("(done)")


def test_progress_off_a_terminal_is_lines_and_disabled_is_silent(capsys):
    bar = progress_bar(range(3), desc="x")  # pytest captures stderr: not a terminal
    assert isinstance(bar, LineProgress)
    list(bar)
    list(progress_bar(range(3), desc="y", progress=False))
    err = capsys.readouterr().err
    assert "\r" not in err and "y:" not in err and err.count("\n") >= 2


def test_write_line_is_one_os_write_of_the_whole_line(tmp_path, monkeypatch):
    calls = []
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: calls.append(bytes(data)) or real_write(fd, data))
    with open(tmp_path / "err.txt", "w", encoding="utf-8") as stream:
        stream.write("pending ")  # buffered by Python: must reach the file before the line
        write_line("rtseg eval (rank 1): error: label x.png holds ids [99] \u2013 fix it", stream)
    assert calls[-1] == "rtseg eval (rank 1): error: label x.png holds ids [99] \u2013 fix it\n".encode()
    assert (tmp_path / "err.txt").read_text(encoding="utf-8").startswith("pending rtseg eval (rank 1)")


# Two processes writing lines to one pipe at once, as two failing ranks under torchrun do. With
# unbuffered streams print() writes the text and the newline apart, and then about one line in
# ten of this test runs into the other process's (measured); write_line keeps each whole.
_WRITER = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("progress", sys.argv[1])
progress = importlib.util.module_from_spec(spec)
spec.loader.exec_module(progress)
print("ready", flush=True)
sys.stdin.readline()  # both start writing together
for _ in range(5000):
    progress.write_line(sys.argv[2] * 100)
"""


def test_lines_of_two_processes_stay_whole():
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    read_end, write_end = os.pipe()
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, rtseg.progress.__file__, mark], stderr=write_end,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env) for mark in "ab"]
    os.close(write_end)
    assert [w.stdout.readline() for w in writers] == ["ready\n"] * 2
    for w in writers:
        w.stdin.write("go\n")
        w.stdin.flush()
    with os.fdopen(read_end, "r") as pipe:
        lines = pipe.read().splitlines()
    assert [w.wait(timeout=60) for w in writers] == [0, 0]
    assert len(lines) == 10000 and set(lines) == {"a" * 100, "b" * 100}
