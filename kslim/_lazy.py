"""Package attributes imported on first use (PEP 562), so `kslim --help` skips TensorFlow."""

from __future__ import annotations

import importlib
import sys
from typing import Callable


def lazy_attributes(package: str, homes: dict[str, str]) -> tuple[Callable, Callable]:
    """The `__getattr__` and `__dir__` of `package`, whose attribute `name` lives in its
    submodule `homes[name]` and is imported (and cached in the package) on first use."""
    namespace = vars(sys.modules[package])

    def __getattr__(name: str):  # noqa: N807
        if name in homes:
            value = getattr(importlib.import_module(f"{package}.{homes[name]}"), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():  # noqa: N807
        return sorted(set(namespace) | set(homes))

    return __getattr__, __dir__
