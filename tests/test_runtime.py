"""rtseg.runtime: which convolutions oneDNN's bf16 channels-last training gets wrong."""

from torch import nn


def test_bf16_unsafe_convolutions_are_the_dilated_ones_off_a_multiple_of_16():
    from rtseg.models import create_model
    from rtseg.runtime import bf16_channels_last_unsafe_convs

    net = nn.Sequential(
        nn.Conv2d(30, 30, (3, 1), padding=(4, 0), dilation=(4, 1)),  # unsafe: pruned EDANet's shape
        nn.Conv2d(30, 32, 3, padding=1),  # not dilated
        nn.Conv2d(32, 32, 3, padding=8, dilation=8),  # 32 channels
        nn.Conv2d(32, 40, (1, 3), padding=(0, 2), dilation=(1, 2)),  # 40 output channels: unsafe
        nn.Conv2d(40, 40, 3, padding=4, dilation=4, groups=40),  # depthwise (DABNet's kind)
    )
    assert bf16_channels_last_unsafe_convs(net) == ["0", "3"]
    # EDANet's growth of 40 channels with dilations up to 16: affected; ENet's dilated 128: not.
    assert bf16_channels_last_unsafe_convs(create_model("edanet", num_classes=11))
    assert not bf16_channels_last_unsafe_convs(create_model("enet", num_classes=11))
