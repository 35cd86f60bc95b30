"""rtseg.cli: every command and option has help, shared options mean the same everywhere, bad
inputs of every command give one clear line with exit code 2, and --tta is reported. The command
line is thin (it parses, calls the API and prints): these tests check what only the CLI does;
one command's own are in test_cli_<command>.py."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

import rtseg
from rtseg.cli import build_parser, main

REPO = Path(__file__).resolve().parents[2]


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


def test_api_and_cli_report_tta(few_camvid, tmp_path, capsys):
    seg = rtseg.load_model("enet-camvid", device="cpu", tta="flip")
    image = np.asarray(np.random.default_rng(0).integers(0, 255, (90, 120, 3)), dtype=np.uint8)
    plain = rtseg.load_model("enet-camvid", device="cpu").predict(image)
    flipped = seg.predict(image)
    assert seg.tta == "flip" and flipped.shape == plain.shape == (90, 120)
    assert not np.array_equal(flipped, plain)  # the average is another prediction on noise
    out = tmp_path / "e.json"
    assert main(["eval", "--weights", "enet-camvid", "--dataset", "camvid", "--data-root", str(few_camvid),
                 "--split", "val", "--tta", "flip", "--json", str(out)]) == 0
    assert "flip-averaged" in capsys.readouterr().out
    assert json.loads(out.read_text())["tta"] == "flip"
    frames = sorted((few_camvid / "val").glob("*.png"))[:1]
    assert main(["predict", str(frames[0]), "--out", str(tmp_path / "p"), "--tta", "flip", "--device", "cpu"]) == 0
    assert "flip-averaged" in capsys.readouterr().out
    assert (tmp_path / "p" / f"{frames[0].stem}_labels.png").is_file()
