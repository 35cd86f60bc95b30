"""rtseg.engine.distill: the distillation terms (pixel-wise and channel-wise KL, temperature), the
ensemble teacher and its cache, and training with a teacher (resume exact)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import write_enet_ckpt
from rtseg.config import load_config
from rtseg.datasets import build_dataset
from rtseg.engine.distill import Teacher, channel_distillation_kl, distillation_kl, teacher_targets
from rtseg.engine.train import fit
from rtseg.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_kl_is_zero_when_the_student_agrees_and_skips_nan_pixels():
    torch.manual_seed(0)
    student = torch.randn(2, 5, 6, 7)
    teacher = student.log_softmax(1)
    assert float(distillation_kl(student, teacher)) == pytest.approx(0.0, abs=1e-6)
    other = torch.randn(2, 5, 6, 7).log_softmax(1)
    kl = distillation_kl(student, other)
    assert float(kl) > 0.01
    # NaN marks padding: those pixels drop out, whatever the student says there.
    padded = other.clone()
    padded[:, :, :, 4:] = float("nan")
    changed = student.clone()
    changed[:, :, :, 4:] += 10 * torch.randn(2, 5, 6, 3)
    a, b = distillation_kl(student, padded), distillation_kl(changed, padded)
    assert torch.isfinite(a) and float(a) == pytest.approx(float(b), rel=1e-6)
    assert float(distillation_kl(student, torch.full_like(other, float("nan")))) == 0.0


def test_temperature_softens_and_scales_by_t_squared():
    torch.manual_seed(1)
    s, t = torch.randn(1, 4, 3, 3), torch.randn(1, 4, 3, 3).log_softmax(1)
    t_soft = (t / 4).log_softmax(1)
    expected = 16 * (t_soft.exp() * (t_soft - (s / 4).log_softmax(1))).sum(1).mean()
    assert float(distillation_kl(s, t, temperature=4.0)) == pytest.approx(float(expected), rel=1e-5)


def test_teacher_ensemble_maps_are_cached_per_teacher(tiny_camvid, tmp_path):
    a = write_enet_ckpt(tmp_path / "a.pt", bn_statistics=True)
    b = write_enet_ckpt(tmp_path / "b.pt")
    data = build_dataset("camvid", "train", tiny_camvid)
    teacher = Teacher([str(a), str(b)], tta="flip", size=[32, 48])
    maps = teacher_targets(teacher, data, tmp_path / "cache", progress=False)
    assert len(maps) == len(data) and maps[0].shape == (11, 24, 32) and maps[0].dtype == torch.float16
    assert torch.allclose(maps[0].float().exp().sum(0), torch.ones(24, 32), atol=1e-2)  # log-probabilities
    cached = list((tmp_path / "cache").glob("teacher-*.pt"))
    assert len(cached) == 1
    again = teacher_targets(Teacher([str(a), str(b)], tta="flip", size=[32, 48]), data, tmp_path / "cache")
    assert all(torch.equal(x, y) for x, y in zip(maps, again))
    # Another setting is another teacher: another file.
    teacher_targets(Teacher([str(a)], tta="none"), data, tmp_path / "cache", progress=False)
    assert len(list((tmp_path / "cache").glob("teacher-*.pt"))) == 2


def test_bad_teacher_settings_are_config_errors(tiny_camvid, tmp_path):
    a = write_enet_ckpt(tmp_path / "a.pt")
    with pytest.raises(ConfigError, match="distill_teachers"):
        Teacher([])
    with pytest.raises(ConfigError, match="distill_size"):
        Teacher([str(a)], size=[0, 10])
    cfg = _cfg(tiny_camvid, tmp_path / "run", "loss.distill_teachers=[missing.pt]")
    with pytest.raises(ConfigError, match="loss.distill_teachers.*missing.pt"):
        fit(cfg)


def _cfg(root: Path, out: Path, *extra: str):
    return load_config(REPO / "configs" / "enet_camvid.yaml", [
        f"data.data_root={root}", f"run.out_dir={out}", "data.crop=[16,24]", "data.batch_size=2",
        "data.val_batch_size=2", "run.progress=false", "run.image_summaries=0", "run.compile=false",
        "loss.class_weights=none", *extra])


def test_channel_wise_kl_compares_each_class_map_over_the_pixels_and_skips_nan_pixels():
    torch.manual_seed(2)
    student = torch.randn(2, 5, 6, 7)
    teacher = student.log_softmax(1)
    assert float(channel_distillation_kl(student, teacher)) == pytest.approx(0.0, abs=1e-6)
    # Its definition at T = 2: each class's log-probability map over the 42 pixels, softened.
    other = torch.randn(2, 5, 6, 7).log_softmax(1)
    t = (other / 2).flatten(2).log_softmax(2)
    s = (student.log_softmax(1) / 2).flatten(2).log_softmax(2)
    expected = 4 * (t.exp() * (t - s)).sum(2).mean()
    assert float(channel_distillation_kl(student, other, 2.0)) == pytest.approx(float(expected), rel=1e-5)
    # Not the pixel-wise term: moving a class's mass elsewhere in the frame changes it, while
    # every pixel keeps its own distribution over classes (a shifted copy of the same maps).
    shifted = other.roll(3, dims=-1)
    assert float(distillation_kl(other.roll(3, dims=-1), shifted)) == pytest.approx(0.0, abs=1e-6)
    assert float(channel_distillation_kl(other, shifted)) > 0.01
    # NaN marks padding: those pixels drop out; a frame without any valid pixel adds nothing.
    padded = other.clone()
    padded[:, :, :, 4:] = float("nan")
    changed = student.clone()
    changed[:, :, :, 4:] += 10 * torch.randn(2, 5, 6, 3)
    a, b = channel_distillation_kl(student, padded), channel_distillation_kl(changed, padded)
    assert torch.isfinite(a) and float(a) > 0.01 and float(a) == pytest.approx(float(b), rel=1e-5)
    student.requires_grad_(True)
    none = channel_distillation_kl(student, torch.full_like(other, float("nan")))
    none.backward()
    assert float(none.detach()) == 0.0 and torch.isfinite(student.grad).all()


@pytest.mark.parametrize("kl", [distillation_kl, channel_distillation_kl])
def test_a_minus_infinite_teacher_value_stays_finite_at_any_temperature(kl):
    torch.manual_seed(3)
    student, teacher = torch.randn(1, 4, 5, 6), torch.randn(1, 4, 5, 6).log_softmax(1)
    teacher[0, 1, 2, :] = float("-inf")  # a float16 log-probability of a probability below 6e-8
    for temperature in (0.5, 1.0, 4.0):
        assert torch.isfinite(kl(student, teacher, temperature)), temperature


def test_distilled_training_resumes_exactly(tiny_camvid, tmp_path):
    teacher = write_enet_ckpt(tmp_path / "teacher.pt", bn_statistics=True)
    common = ("schedule.name=step", "schedule.step_epochs=1", "schedule.gamma=0.5",
              f"loss.distill_teachers=[{teacher}]", "loss.distill_weight=3.0", "loss.distill_temperature=2.0")
    fit(_cfg(tiny_camvid, tmp_path / "straight", "schedule.epochs=2", *common))
    fit(_cfg(tiny_camvid, tmp_path / "resumed", "schedule.epochs=1", *common))
    fit(_cfg(tiny_camvid, tmp_path / "resumed", "schedule.epochs=2", *common), resume=True)
    a = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k
    assert len(list((tmp_path / "resumed").glob("teacher-*.pt"))) == 1
    # The teacher changes what is learnt: without it the weights differ.
    fit(_cfg(tiny_camvid, tmp_path / "plain", "schedule.epochs=2", *common[:3]))
    c = torch.load(tmp_path / "plain" / "last.pt", weights_only=True)
    assert any(not torch.equal(v, c["state_dict"][k]) for k, v in a["state_dict"].items())
    # The channel-wise term is a recipe key too, and learns otherwise.
    fit(_cfg(tiny_camvid, tmp_path / "channel", "schedule.epochs=2", *common, "loss.distill_kind=channel"))
    d = torch.load(tmp_path / "channel" / "last.pt", weights_only=True)
    assert d["config"]["loss"]["distill_kind"] == "channel"
    assert any(not torch.equal(v, d["state_dict"][k]) for k, v in a["state_dict"].items())


def _pixel_kl_reference(student, teacher, temperature):
    """The pixel-wise term as a plain autograd expression (the fused one must match it)."""
    teacher = teacher.float()
    if teacher.shape[-2:] != student.shape[-2:]:
        teacher = torch.nn.functional.interpolate(teacher, size=student.shape[-2:], mode="bilinear")
    valid = ~torch.isnan(teacher[:, 0])
    t = torch.nan_to_num(teacher, nan=0.0, neginf=-1e4).div(temperature).log_softmax(1)
    s = student.div(temperature).log_softmax(1)
    return temperature ** 2 * (t.exp() * (t - s)).sum(1)[valid].mean()


def _channel_kl_reference(student, teacher, temperature):
    teacher = teacher.float()
    if teacher.shape[-2:] != student.shape[-2:]:
        teacher = torch.nn.functional.interpolate(teacher, size=student.shape[-2:], mode="bilinear")
    invalid = torch.isnan(teacher[:, :1]).flatten(2)
    t = torch.nan_to_num(teacher, nan=0.0, neginf=-1e4).flatten(2).div(temperature).masked_fill(invalid, -1e4)
    s = student.log_softmax(1).flatten(2).div(temperature).masked_fill(invalid, -1e4)
    t, s = t.log_softmax(2), s.log_softmax(2)
    return temperature ** 2 * (t.exp() * (t - s)).masked_fill(invalid, 0.0).sum(2).mean()


@pytest.mark.parametrize("kl, reference", [(distillation_kl, _pixel_kl_reference),
                                           (channel_distillation_kl, _channel_kl_reference)])
@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0])
@pytest.mark.parametrize("teacher_size, teacher_dtype", [((12, 14), torch.float16), ((12, 14), torch.float32),
                                                         ((6, 7), torch.float16)])
def test_the_fused_kl_terms_match_their_autograd_expressions_in_value_and_gradient(
        kl, reference, temperature, teacher_size, teacher_dtype):
    torch.manual_seed(4)
    student = (3 * torch.randn(3, 5, 12, 14)).requires_grad_(True)
    teacher = (2 * torch.randn(3, 5, *teacher_size)).log_softmax(1).to(teacher_dtype)
    teacher[0, :, :, teacher_size[1] // 2:] = float("nan")  # padding
    teacher[0, 3, :, : teacher_size[1] // 2] = float("-inf")  # ruled out wherever there is a value
    teacher[1, 2, :2] = float("-inf")  # a float16 underflow
    teacher[1, 3] = float("-inf")  # a class the teacher rules out everywhere
    teacher[2] = float("nan")  # a frame without a teacher's value
    kept = teacher.clone()
    ours = kl(student, teacher, temperature)
    (grad,) = torch.autograd.grad(3 * ours, student)
    # The reference resizes after the same -inf -> -1e4 (bilinear weights of 0 would make NaN).
    ref = reference(student, teacher.float().masked_fill(teacher.isneginf(), -1e4), temperature)
    (ref_grad,) = torch.autograd.grad(3 * ref, student)
    assert ours.dtype == torch.float32
    assert float(ours.detach()) == pytest.approx(float(ref.detach()), rel=1e-5, abs=1e-7)
    assert torch.allclose(grad, ref_grad, rtol=1e-4, atol=1e-8), float((grad - ref_grad).abs().max())
    assert float(grad.abs().sum()) > 0
    torch.testing.assert_close(teacher, kept, rtol=0, atol=0, equal_nan=True)  # the input is not written
    # A bfloat16 student (autocast): a float32 loss, the gradient in the student's dtype.
    low = student.detach().bfloat16().requires_grad_(True)
    (low_grad,) = torch.autograd.grad(kl(low, teacher, temperature), low)
    assert low_grad.dtype == torch.bfloat16 and torch.isfinite(low_grad).all()


@pytest.mark.parametrize("kl", [distillation_kl, channel_distillation_kl])
def test_a_batch_without_any_teacher_value_adds_nothing_and_still_backpropagates(kl):
    student = torch.randn(2, 4, 5, 6, requires_grad=True)
    loss = kl(student, torch.full((2, 4, 5, 6), float("nan")))
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.equal(student.grad, torch.zeros_like(student))
