"""rtseg.cli.evaluate (rtseg eval): the table it prints, the JSON it writes, and an error in a
DataLoader worker as one line."""

from __future__ import annotations

import json

import numpy as np

from conftest import save_png
from rtseg.cli import main


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
