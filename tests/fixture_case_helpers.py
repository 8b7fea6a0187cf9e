"""Reading the research/slim reference fixtures (tests/fixtures/<net>-<classes>-<size>)
for the MobileNet v1, Inception v4 and Inception-ResNet-v2 tests.

A case folder holds `manifest.json` (slim's variable list, the input recipe and
statistics of every end point) and `expected.npz` (slim's eval-mode logits for the
recipe weights); see tests/fixtures/README.md.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

from kslim import compat
from slim_harness import recipe_value

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


def load_case(case: str):
    """(manifest dict, expected npz) of a fixture folder."""
    manifest = json.loads((FIXTURES / case / "manifest.json").read_text())
    return manifest, dict(np.load(FIXTURES / case / "expected.npz"))


def case_inputs(manifest) -> np.ndarray:
    size = manifest["image_size"]
    rng = np.random.default_rng(manifest["input_seed"])
    return rng.uniform(-1.0, 1.0, [manifest["batch"], size, size, 3]).astype(np.float32)


def case_variables(manifest) -> dict[str, tuple[int, ...]]:
    return {name: tuple(shape) for name, shape in manifest["variables"]}


def model_variables(model) -> dict[str, tuple[int, ...]]:
    return {name: tuple(v.shape) for name, v in compat.slim_variables(model).items()}


def assign_recipe(model) -> None:
    """Gives every slim variable of `model` the fixtures' recipe value."""
    for name, variable in compat.slim_variables(model).items():
        variable.assign(recipe_value(name, variable.shape))


def check_end_point_stats(points: dict, manifest, what: str) -> float:
    """Compares each fixture end point's shape, mean, std and absmax with kslim's.

    Tolerance: 1e-4 relative to the end point's magnitude (its absmax in slim), so a
    mean close to zero is held to the same scale as the values it averages.
    Returns the largest difference found, in those relative units.
    """
    worst = 0.0
    missing = sorted(set(manifest["end_points"]) - set(points))
    assert not missing, f"{what}: end points missing: {missing}"
    for key, ref in manifest["end_points"].items():
        value = np.asarray(points[key], np.float64)
        assert list(value.shape) == ref["shape"], f"{what} {key}: shape {value.shape}"
        scale = max(ref["absmax"], 1e-12)
        for stat, got in (("mean", value.mean()), ("std", value.std()),
                          ("absmax", np.abs(value).max())):
            diff = abs(got - ref[stat]) / scale
            assert diff <= 1e-4, (f"{what} end point {key}: {stat} {got:.8g} vs slim "
                                  f"{ref[stat]:.8g} ({diff:.3g} of its absmax)")
            worst = max(worst, diff)
    return worst
