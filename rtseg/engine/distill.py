"""Knowledge distillation from a teacher computed once per frame (``loss.distill_*``).

The teacher is one or several trained networks (shipped names or checkpoints), averaged in
probability (:class:`~rtseg.models.tta.ProbabilityAverage`), run at its best test-time setting:
flip-averaged and on an enlarged input (``loss.distill_size``, e.g. 540x720 for 360x480
frames; its logits come back to the frame's size). That is 2 x 2.25 times a network's work per
member, so it is run **once per training frame**, before the first epoch, not at every step:
its (C, H, W) log-probabilities are kept in half precision (CamVid: 367 frames x 11 x 360 x 480
x 2 bytes = 1.4 GB) and cached in the run folder, keyed by the teachers' weights, the setting
and the frame list, so a resumed run reads them back instead of recomputing.

At each step the stored map travels with the label through the same random scale, crop and
flip (:mod:`rtseg.datasets.transforms`), and the loss adds ``distill_weight * T^2 *
KL(teacher_T || student_T)`` per pixel (:func:`distillation_kl`). A student step therefore
costs what it costs without a teacher, plus the KL (forward and backward for 8 frames of 360x480
on a 2-core EPYC: 0.13 s pixel-wise, 0.17 s channel-wise, docs/training.md; a pixel-wise
distilled EDANet step takes about 1.1 s).

``loss.distill_kind: channel`` compares each class's map over the frame instead
(:func:`channel_distillation_kl`; Shu et al., "Channel-wise Knowledge Distillation for Dense
Prediction", ICCV 2021): where in the frame a class is, rather than which class a pixel is.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable
from torch.utils.data import Dataset

from rtseg.datasets.transforms import normalize
from rtseg.errors import ConfigError
from rtseg.io import atomic_path
from rtseg.models.tta import ProbabilityAverage, check_tta, with_tta
from rtseg.progress import print_line, progress_bar
from rtseg.weights import LoadedWeights, load_weights


class Teacher:
    """One or several weights averaged in probability, flip-averaged or not, run at ``size``.

    ``__call__(image)``: (3, H, W) uint8 frame -> (C, H, W) float16 log-probabilities at the
    frame's own size."""

    def __init__(self, weights: list[str], tta: str = "flip", size: list[int] | None = None) -> None:
        if not weights:
            raise ConfigError("loss.distill_teachers: expected at least one shipped name or checkpoint")
        check_tta(tta)
        if size is not None and (len(size) != 2 or min(size) <= 0):
            raise ConfigError(f"loss.distill_size: expected [H, W] with positive sides, got {size}")
        self.loaded: list[LoadedWeights] = [load_weights(w) for w in weights]
        first = self.loaded[0]
        for w, lw in zip(weights[1:], self.loaded[1:]):
            if lw.classes.names != first.classes.names or (lw.mean, lw.std) != (first.mean, first.std):
                raise ConfigError(f"loss.distill_teachers: {w} has other classes or input normalisation "
                                  f"than {weights[0]}: a teacher's members must agree")
        self.weights, self.tta, self.size = list(weights), tta, list(size) if size else None
        models = [lw.torch_model().eval() for lw in self.loaded]
        self.model = with_tta(models[0] if len(models) == 1 else ProbabilityAverage(models), tta)

    @property
    def classes(self):
        return self.loaded[0].classes

    def fingerprint(self) -> str:
        """A digest of the members' weights and the setting (what the cached maps depend on)."""
        h = hashlib.sha256(json.dumps({"tta": self.tta, "size": self.size}).encode())
        for lw in self.loaded:
            for key, t in sorted(lw.torch_model().state_dict().items()):
                h.update(key.encode())
                h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        return h.hexdigest()

    @torch.no_grad()
    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        lw = self.loaded[0]
        x = normalize(image, lw.mean, lw.std)[None]  # (1, 3, H, W)
        frame = tuple(x.shape[-2:])
        if self.size is not None and tuple(self.size) != frame:
            x = F.interpolate(x, size=tuple(self.size), mode="bilinear", align_corners=False, antialias=True)
        logits = self.model(x).float()  # (1, C, h, w)
        if tuple(logits.shape[-2:]) != frame:
            logits = F.interpolate(logits, size=frame, mode="bilinear", align_corners=False)
        return logits.log_softmax(1)[0].half()  # (C, H, W)


def teacher_targets(teacher: Teacher, dataset, cache_dir: str | Path | None = None,
                    progress: bool = True) -> list[torch.Tensor]:
    """The teacher's (C, H, W) float16 log-probabilities of every frame of ``dataset`` (a
    :class:`~rtseg.datasets.base.SegmentationDataset`, untransformed frames), read from
    ``cache_dir`` when an earlier run computed them for the same teacher and frames."""
    if teacher.classes.num_classes != dataset.classes.num_classes:
        raise ConfigError(f"loss.distill_teachers: the teacher predicts {teacher.classes.num_classes} classes "
                          f"but the training data has {dataset.classes.num_classes}")
    _check_size(teacher, dataset)
    key = hashlib.sha256((teacher.fingerprint() + "\n".join(str(s.image) for s in dataset.samples)).encode())
    path = Path(cache_dir) / f"teacher-{key.hexdigest()[:16]}.pt" if cache_dir is not None else None
    if path is not None and path.is_file():
        print_line(f"distillation: the teacher's maps of {len(dataset)} frames read from {path}")
        return torch.load(path, mmap=True, weights_only=True)
    maps = []
    for i in progress_bar(range(len(dataset)), desc="teacher", unit="img", progress=progress):
        image, _ = dataset.load(i)
        maps.append(teacher(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)).clone())
    if path is not None:
        with atomic_path(path) as tmp:
            torch.save(maps, tmp)
        print_line(f"distillation: the teacher's maps of {len(dataset)} frames cached in {path}")
    return maps


#: Most memory the teacher's maps may take (they are held in memory while training).
MAX_MAP_BYTES = 8 * 2**30


def _check_size(teacher: Teacher, dataset) -> None:
    """A one-line error before any work when the maps would not fit (Cityscapes at 1024x2048:
    about 80 GB for 19 classes): train on resized frames (data.resize) instead."""
    from rtseg.datasets.base import image_size

    h, w = image_size(dataset.samples[0].image)
    total = len(dataset) * teacher.classes.num_classes * h * w * 2
    if total > MAX_MAP_BYTES:
        raise ConfigError(f"loss.distill_teachers: the teacher's maps of {len(dataset)} frames of {w}x{h} would take "
                          f"{total / 2**30:.0f} GB (at most {MAX_MAP_BYTES / 2**30:.0f}); train on smaller frames "
                          "(rtseg datasets resize, then data.data_root) or fewer")


class DistillationDataset(Dataset):
    """A training set whose samples carry the teacher's map: ``(image, label, soft)``, all three
    through ``transform`` (see :mod:`rtseg.datasets.transforms`)."""

    def __init__(self, base, soft: list[torch.Tensor], transform) -> None:
        if len(soft) != len(base):
            raise ValueError(f"{len(soft)} teacher maps for {len(base)} frames")
        self.base, self.soft, self.transform = base, soft, transform
        self.classes, self.samples = base.classes, base.samples

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        image, label = self.base.load(index)
        img_t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)  # (3, H, W) uint8
        lbl_t = torch.from_numpy(label.astype(np.int64))  # (H, W)
        return self.transform(img_t, lbl_t, self.soft[index])


#: Stands in for a log-probability of -inf, or of a pixel without a teacher's value: exp() is 0 in float32,
#: and unlike -inf it keeps a frame with no valid pixel finite (a uniform map, KL 0).
_NO_PIXEL = -1e4


def _at_student_size(teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
    """A float32 copy of the teacher's map (the caller's is never written), resized to the
    student's logits when they differ."""
    if teacher.shape[-2:] == student.shape[-2:]:
        return teacher.to(torch.float32, copy=True)
    # -inf would meet a zero bilinear weight at a border (NaN, read later as padding's 0).
    teacher = teacher.float()
    teacher = teacher.masked_fill(torch.isneginf(teacher), _NO_PIXEL)
    return F.interpolate(teacher, size=student.shape[-2:], mode="bilinear", align_corners=False)


class _PrecomputedGradient(torch.autograd.Function):
    """Returns ``value`` (a scalar computed without autograd) and hands ``grad`` (d value /
    d student, computed beside it) back to ``student``.

    Why: the two KL terms written as autograd expressions took 0.24 s (pixel) and 0.44 s
    (channel) forward + backward for 8x11x360x480 logits on a 2-core EPYC, a fifth to two fifths
    of a pixel-wise distilled EDANet step (about 1.1 s). Their gradients have closed forms (a softmax minus the teacher's
    probabilities), so value and gradient come from a few in-place passes over the map instead:
    0.13 s and 0.17 s (measured as docs/training.md says)."""

    @staticmethod
    def forward(ctx, student: torch.Tensor, value: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(grad)
        return value

    @staticmethod
    @once_differentiable  # the saved gradient is a constant: no second derivative
    def backward(ctx, grad_output: torch.Tensor):
        (grad,) = ctx.saved_tensors
        return grad * grad_output, None, None


def distillation_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Pixel-wise ``T^2 * KL(softmax(t / T) || softmax(s / T))``, averaged over the pixels where
    the teacher has a value (NaN marks padding).

    student (N, C, H, W) logits; teacher (N, C, h, w) log-probabilities (resized to the
    student's size when they differ). The T^2 keeps the gradient's scale independent of T
    (Hinton et al.): d/ds = T / n_valid * (softmax(s / T) - softmax(t / T)) at each valid pixel."""
    t = _at_student_size(teacher, student)  # (N, C, H, W), our own copy: written in place
    invalid = torch.isnan(t[:, :1])  # (N, 1, H, W)
    n_valid = int((~invalid).sum())
    if n_valid == 0:
        return student.float().sum() * 0.0
    with torch.no_grad():
        # A float16 log-probability can be -inf (a probability below 6e-8): finite, it stays 0
        # after exp() and never meets 0 * inf.
        t = t.nan_to_num_(nan=0.0, neginf=_NO_PIXEL)
        if temperature != 1.0:
            t = t.div_(temperature)
        t = t.log_softmax(1)
        p_t = t.exp()
        s = student.detach().float()
        s = (s / temperature if temperature != 1.0 else s).log_softmax(1)
        kl = (p_t * t.sub_(s)).sum(1, keepdim=True).masked_fill_(invalid, 0.0)  # (N, 1, H, W)
        value = temperature ** 2 * kl.sum() / n_valid
        grad = s.exp_().sub_(p_t).mul_(temperature / n_valid).masked_fill_(invalid, 0.0)
    # float32 value whatever the student's dtype; autograd casts the gradient back to it.
    return _PrecomputedGradient.apply(student, value, grad)


def channel_distillation_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Channel-wise ``T^2 * KL(softmax_HW(t_c / T) || softmax_HW(s_c / T))``, averaged over the
    images and classes: each class's (log-probability) map, softened by T, as a distribution over
    the pixels where the teacher has a value (NaN marks padding).

    student (N, C, H, W) logits; teacher (N, C, h, w) log-probabilities (resized when they
    differ). The student's logits become log-probabilities too (``l = log_softmax_C(s)``), so both
    maps carry the same per-pixel normalisation (the teacher, an average of networks'
    probabilities, has no logits). Gradient: with ``p`` the teacher's map over the pixels and
    ``m = sum_valid p`` (1 unless a class sits at the padding's -1e4 everywhere), ``g = T / (N C)
    * (m * softmax_HW(l / T) - p)`` at the valid pixels, and d/ds = g - softmax_C(s) * sum_C g."""
    with torch.no_grad():
        t = _at_student_size(teacher, student)  # our own copy: written in place
        n, c = t.shape[:2]
        invalid = torch.isnan(t[:, :1]).flatten(2)  # (N, 1, HW)
        t = t.flatten(2).nan_to_num_(nan=0.0, neginf=_NO_PIXEL)  # (N, C, HW)
        if temperature != 1.0:
            t = t.div_(temperature)
        t = t.masked_fill_(invalid, _NO_PIXEL).log_softmax(2)  # each class's map over the pixels
        p_t = t.exp().masked_fill_(invalid, 0.0)  # (masked: a class at -inf everywhere is uniform)
        log_p = student.detach().float().log_softmax(1).flatten(2)  # (N, C, HW)
        s = log_p / temperature if temperature != 1.0 else log_p.clone()
        s = s.masked_fill_(invalid, _NO_PIXEL).log_softmax(2)
        kl = (p_t * t.sub_(s)).sum(2)  # (N, C)
        value = temperature ** 2 * kl.mean()
        mass = p_t.sum(2, keepdim=True)  # (N, C, 1)
        g = s.exp_().mul_(mass).sub_(p_t).mul_(temperature / (n * c)).masked_fill_(invalid, 0.0)
        grad = g.sub_(log_p.exp_().mul_(g.sum(1, keepdim=True)))
    return _PrecomputedGradient.apply(student, value, grad.view_as(student))
