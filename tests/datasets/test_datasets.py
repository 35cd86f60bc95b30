"""rtseg.datasets: the data root from $RTSEG_DATA, and unknown dataset names."""

from __future__ import annotations

import pytest

from rtseg.datasets import resolve_data_root
from rtseg.errors import DatasetError


def test_data_root_from_environment(tiny_camvid, monkeypatch):
    monkeypatch.setenv("RTSEG_DATA", str(tiny_camvid.parent))
    assert resolve_data_root("camvid") == tiny_camvid
    monkeypatch.delenv("RTSEG_DATA")
    with pytest.raises(DatasetError, match="RTSEG_DATA"):
        resolve_data_root("camvid")
    with pytest.raises(DatasetError, match="unknown dataset 'camvd'.*camvid"):
        resolve_data_root("camvd")
