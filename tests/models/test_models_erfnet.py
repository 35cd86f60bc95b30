"""rtseg.models.erfnet: ERFNet follows the paper and the reference implementation."""

from __future__ import annotations

import pytest
from torch import nn

from rtseg import create_model


def test_erfnet_follows_the_paper():
    from rtseg.models._layers import Downsampler as _Downsampler
    from rtseg.models.erfnet import _NonBottleneck1D

    m = create_model("erfnet", num_classes=20)
    # The layers of the reference implementation (Eromera/erfnet_pytorch, train/erfnet.py: biased
    # convolutions, BN eps 1e-3), 20 classes: 2,064,256 parameters ("2.1M" in the paper).
    assert sum(p.numel() for p in m.parameters()) == 2_064_256
    blocks = [b for b in m.encoder if isinstance(b, _NonBottleneck1D)]
    assert [isinstance(b, _Downsampler) for b in m.encoder].count(True) == 3 and len(blocks) == 13
    assert [b.branch[5].dilation[0] for b in blocks[5:]] == [2, 4, 8, 16, 2, 4, 8, 16]
    assert [b.branch[0].kernel_size for b in blocks[:1]] == [(3, 1)] and blocks[0].branch[2].kernel_size == (1, 3)
    assert blocks[0].branch[-1].p == pytest.approx(0.03) and blocks[-1].branch[-1].p == pytest.approx(0.3)
    assert not any(isinstance(x, nn.Dropout2d) for x in m.decoder.modules())
