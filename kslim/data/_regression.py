"""`produce_batch`: the noisy sine regression data of slim's walkthrough.

Mirrors `produce_batch` in research/slim `slim_walkthrough.ipynb` ("Creating a regression
model"): `x` uniform in [0, 10), `y = sin(x) + 5 + noise`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["produce_batch"]


def produce_batch(batch_size: int, noise: float = 0.3, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Returns `(xs, ys)`, float32 arrays of shape `[batch_size, 1]`.

    Args:
        batch_size: number of points.
        noise: standard deviation of the Gaussian noise added to `sin(x) + 5`.
        seed: seed for `numpy.random.default_rng`; None draws fresh points.

    Example:
        >>> xs, ys = kslim.data.produce_batch(200, seed=0)
        >>> model.fit(xs, ys, epochs=100)
    """
    rng = np.random.default_rng(seed)
    xs = rng.uniform(0.0, 10.0, size=[batch_size, 1])
    ys = np.sin(xs) + 5.0 + rng.normal(0.0, noise, size=[batch_size, 1])
    return xs.astype(np.float32), ys.astype(np.float32)
