"""Every network's outputs against stored references, so that a numeric change to a network (a
layer, an activation, an epsilon, a resize mode, an initialisation) fails here. After an intended
change: ``python tests/make_reference_outputs.py`` (see tests/reference_outputs.py)."""

from __future__ import annotations

import math

import pytest

from reference_outputs import PATH, digest, load
from rtseg.models import list_models

# Float32 convolutions sum in a CPU-dependent order (vector width, oneDNN kernels, threads), so
# runs differ in the last digits; a real change moves them by far more than this.
RTOL = 1e-3


def _close(got: float, want: float, scale: float) -> bool:
    return math.isclose(got, want, rel_tol=RTOL, abs_tol=RTOL * scale)


def test_every_model_has_a_reference():
    assert sorted(load()) == list_models(), f"run python tests/make_reference_outputs.py to add them ({PATH})"


@pytest.mark.parametrize("name", list_models())
def test_outputs_match_the_reference(name):
    want = load().get(name)
    if want is None:
        pytest.fail(f"no reference for {name}: run python tests/make_reference_outputs.py {name}")
    got = digest(name)
    hint = f"{name} computes something else than stored; if intended: python tests/make_reference_outputs.py {name}"
    assert got["num_params"] == want["num_params"] and got["shape"] == want["shape"], hint
    for key in ("param_sum", "param_abs_sum"):
        assert _close(got[key], want[key], want["param_abs_sum"] / want["num_params"]), (key, hint)
    scale = want["std"]
    for key in ("mean", "std", "min", "max", "abs_mean"):
        assert _close(got[key], want[key], scale), (key, got[key], want[key], hint)
    far = [(i, g, w) for i, (g, w) in enumerate(zip(got["samples"], want["samples"])) if not _close(g, w, scale)]
    assert len(got["samples"]) == len(want["samples"]) and not far, (far[:5], hint)
