"""Progress in a log file or pipe: a few whole lines, no carriage returns."""

from __future__ import annotations

from rtseg.progress import LineProgress, progress


def test_line_progress_writes_quarters(capsys):
    items = list(LineProgress(range(100), desc="work", unit="img"))
    assert items == list(range(100))
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "work: 0/100 img"
    assert [line.split()[1] for line in lines[1:]] == ["25/100", "50/100", "75/100", "100/100"]
    assert lines[-1].endswith("(done)")


def test_progress_off_a_terminal_is_lines_and_disabled_is_silent(capsys):
    bar = progress(range(3), desc="x")  # pytest captures stderr: not a terminal
    assert isinstance(bar, LineProgress)
    list(bar)
    list(progress(range(3), desc="y", enabled=False))
    err = capsys.readouterr().err
    assert "\r" not in err and "y:" not in err and err.count("\n") >= 2
