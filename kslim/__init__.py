"""kslim: TF-Slim's image models, checkpoints, datasets and training on Keras 3."""

import importlib

__version__ = "0.1.0"

_SUBMODULES = ("compat", "data", "detection", "export", "models", "preprocess", "training")
__all__ = ["__version__", *_SUBMODULES]


def __getattr__(name: str):
    # Sub-packages load on first use, so `kslim --help` does not import TensorFlow.
    if name in _SUBMODULES:
        return importlib.import_module(f"kslim.{name}")
    raise AttributeError(f"module 'kslim' has no attribute {name!r}")
