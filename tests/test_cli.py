"""The command line is thin: it parses, calls the API and prints. These tests check what only the
CLI does: complete --help, one-line errors with exit code 2, what it prints, and progress that
suits a pipe."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from conftest import save_png
from rtseg.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]


def _subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                for inner, subsub in _subparsers(sub):
                    yield f"{name} {inner}", subsub


def test_every_command_and_option_has_help():
    commands = dict(_subparsers(build_parser()))
    assert {"train", "predict", "eval", "export", "bench", "video", "prune", "class-weights", "datasets info",
            "datasets resize"} <= set(commands)
    for name, parser in commands.items():
        assert parser.description, name
        for action in parser._actions:
            if not isinstance(action, argparse._SubParsersAction):
                assert action.help, f"rtseg {name} {'/'.join(action.option_strings) or action.dest} has no help"


def test_shared_options_mean_the_same_everywhere():
    helps: dict[str, set] = {}
    defaults: dict[str, set] = {}
    for _name, parser in _subparsers(build_parser()):
        for action in parser._actions:
            for flag in ("--weights", "--device", "--threads"):
                if flag in action.option_strings:
                    helps.setdefault(flag, set()).add(action.help)
                    defaults.setdefault(flag, set()).add(action.default)
    assert len(helps["--weights"]) == 1 and defaults["--weights"] == {None}
    assert len(helps["--device"]) == 1 and defaults["--device"] == {"auto"}
    assert len(helps["--threads"]) == 1 and defaults["--threads"] == {0}


def test_bad_inputs_give_one_clear_line(enet_ckpt, tiny_camvid, tmp_path, capsys):
    def error(argv: list[str]) -> str:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"rtseg {argv[0]}: error: "), err
        return err

    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG broken")
    assert "cannot read image" in error(["predict", str(corrupt), "--weights", str(enet_ckpt), "--out",
                                         str(tmp_path / "o")])
    plain = tmp_path / "plain.pt"
    torch.save({"conv.weight": torch.zeros(1)}, plain)
    assert "is not an rtseg checkpoint" in error(["predict", str(corrupt), "--weights", str(plain), "--out",
                                                  str(tmp_path / "o")])
    text = tmp_path / "notes.pt"
    text.write_text("some text, not a checkpoint\n")
    assert "cannot read checkpoint" in error(["predict", str(corrupt), "--weights", str(text), "--out",
                                              str(tmp_path / "o")])
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"nothing useful")
    assert "not an ONNX file" in error(["bench", "--weights", str(junk), "--backend", "onnxruntime"])
    err = error(["train", "--config", str(REPO / "configs" / "enet_camvid.yaml"), "optim.lrate=1"])
    assert "unknown config key 'optim.lrate'" in err and "lr" in err
    # An override right after --resume is an override, not the checkpoint's path.
    err = error(["train", "--config", str(REPO / "configs" / "enet_camvid.yaml"), "--resume", "optim.lrate=1"])
    assert "unknown config key 'optim.lrate'" in err
    assert "input not found: nowhere.png" in error(["predict", "nowhere.png", "--weights", str(enet_ckpt),
                                                    "--out", str(tmp_path / "o")])
    assert "--size '24by32'" in error(["export", "--weights", str(enet_ckpt), "--size", "24by32", "--out",
                                       str(tmp_path / "x.onnx")])
    assert "--int8 needs --calibrate" in error(["export", "--weights", str(enet_ckpt), "--int8", "--out",
                                                str(tmp_path / "x.onnx")])
    assert "--runs 0" in error(["bench", "--model", "enet", "--runs", "0"])
    assert "--threads -1" in error(["predict", str(corrupt), "--threads", "-1", "--out", str(tmp_path / "o")])
    assert "has no sequence 'XYZ'" in error(["eval", "--weights", str(enet_ckpt), "--dataset", "camvid", "--data-root",
                                             str(tiny_camvid), "--split", "val/XYZ"])
    assert "--batch 0" in error(["video", "nowhere.mp4", "--out", str(tmp_path / "v.mp4"), "--batch", "0"])
    assert "--workers 0" in error(["serve", "--workers", "0"])
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        assert "cannot listen there" in error(["serve", "--port", port])


def test_worker_errors_reach_the_cli_as_one_line(enet_ckpt, tiny_camvid, capsys):
    # A bad label met inside a DataLoader worker still ends as one clear line, not a traceback.
    save_png(tiny_camvid / "valannot" / "0001TP_000000.png", np.full((24, 32), 99, np.uint8), "L")
    code = main(["eval", "--weights", str(enet_ckpt), "--dataset", "camvid", "--data-root", str(tiny_camvid),
                 "--workers", "1", "--device", "cpu"])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and "Traceback" not in "".join(err)
    assert err[-1].startswith("rtseg eval: error: label ") and "0001TP_000000.png holds ids [99]" in err[-1]
    assert [line for line in err if "error" in line] == err[-1:]


def test_eval_prints_the_table_and_writes_what_the_api_returns(enet_ckpt, tiny_camvid, tmp_path, capsys):
    import rtseg

    out = tmp_path / "r.json"
    assert main(["eval", "--weights", str(enet_ckpt), "--dataset", "camvid", "--data-root", str(tiny_camvid),
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "mIoU" in text and "Bicyclist" in text
    direct = rtseg.evaluate(enet_ckpt, "camvid", "val", data_root=tiny_camvid, progress=False)
    assert json.loads(out.read_text()) == json.loads(json.dumps(direct))


def test_predict_prints_a_summary(enet_ckpt, tmp_path, capsys):
    save_png(tmp_path / "in" / "a.png", np.zeros((24, 32, 3), np.uint8))
    assert main(["predict", str(tmp_path / "in"), "--weights", str(enet_ckpt), "--out", str(tmp_path / "o")]) == 0
    assert "1 image(s)" in capsys.readouterr().out and (tmp_path / "o" / "a_labels.png").is_file()


def test_progress_in_a_pipe_is_plain_lines_and_an_error_has_its_own(enet_ckpt, tmp_path):
    folder = tmp_path / "frames"
    for i in range(8):
        save_png(folder / f"{i}.png", np.full((24, 32, 3), 20 * i, np.uint8))
    done = subprocess.run([sys.executable, "-m", "rtseg", "predict", str(folder), "--weights", str(enet_ckpt),
                           "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert "\r" not in done.stderr and 2 <= len(lines) <= 6, lines
    assert lines[0].startswith("predict: 0/8") and lines[-1].startswith("predict: 8/8")
    (folder / "5.png").write_bytes(b"broken")
    done = subprocess.run([sys.executable, "-m", "rtseg", "predict", str(folder), "--weights", str(enet_ckpt),
                           "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].startswith("rtseg predict: error: cannot read image")
