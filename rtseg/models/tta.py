"""Test-time augmentation: a wrapper that averages a network over transformed inputs.

Flip averaging (``tta="flip"``) runs the network on the image and on its mirror image and
averages the two softmax distributions: about +0.7 mIoU for ENet in PaddleSeg's tables, at twice
the cost. It is an option of ``rtseg eval`` / ``rtseg predict`` / :func:`rtseg.load_model`,
never the default, and a figure with it is reported as such.
"""

from __future__ import annotations

import torch
from torch import nn

from rtseg.errors import RtsegError

#: The test-time augmentations on offer; "none" is the network alone.
TTA_MODES = ("none", "flip")


class FlipAverage(nn.Module):
    """(N, 3, H, W) -> (N, C, H, W): ``log(mean(softmax(f(x)), flip(softmax(f(flip(x))))))``.

    The log of the averaged probabilities is a valid logit tensor (softmax gives back the
    average, argmax the averaged prediction), so every caller of the model contract works
    unchanged. Eval mode only: training keeps the plain network.
    """

    def __init__(self, model) -> None:
        super().__init__()
        #: A network or any callable of the contract (an exported ONNX model's wrapper).
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            raise RuntimeError("FlipAverage is for inference: train the wrapped model itself")
        # Two passes rather than one of batch 2N: static exports run at their export batch size.
        probs = self.model(x).float().softmax(1)  # (N, C, H, W)
        mirrored = self.model(x.flip(-1)).float().softmax(1).flip(-1)
        return ((probs + mirrored) / 2).clamp_min_(1e-12).log()


class ProbabilityAverage(nn.Module):
    """An ensemble: (N, 3, H, W) -> (N, C, H, W) ``log(mean_i softmax(f_i(x)))`` over several
    networks of the same classes and input normalisation (a distillation teacher, ``rtseg eval
    --weights a,b``). Like :class:`FlipAverage`, the log of the averaged probabilities is a valid
    logit tensor. Members whose output size differs are resized to the first one's."""

    def __init__(self, models) -> None:
        super().__init__()
        if len(models) < 1:
            raise ValueError("ProbabilityAverage needs at least one network")
        self.members = list(models)  # plain callables too (ONNX wrappers): not registered as children

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            raise RuntimeError("ProbabilityAverage is for inference")
        total = None
        for m in self.members:
            p = m(x).float().softmax(1)  # (N, C, H, W)
            if total is not None and p.shape[-2:] != total.shape[-2:]:
                p = torch.nn.functional.interpolate(p, size=total.shape[-2:], mode="bilinear", align_corners=False)
            total = p if total is None else total + p
        return (total / len(self.members)).clamp_min_(1e-12).log()


def check_tta(mode: str) -> str:
    """``mode`` when it is one of :data:`TTA_MODES`, else a one-line error naming ``--tta``."""
    if mode not in TTA_MODES:
        raise RtsegError(f"--tta {mode!r}: expected one of {', '.join(TTA_MODES)}")
    return mode


def with_tta(model, mode: str = "none"):
    """``model`` itself for "none", wrapped in :class:`FlipAverage` for "flip"."""
    check_tta(mode)
    return model if mode == "none" else FlipAverage(model).eval()
