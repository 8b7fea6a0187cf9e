"""kslim: TF-Slim's image models, checkpoints, datasets and training on Keras 3."""

__version__ = "0.1.0"

from kslim import compat, models  # noqa: E402

__all__ = ["__version__", "compat", "models"]
