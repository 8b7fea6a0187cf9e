"""The model registry: slim's `nets_factory` names, image sizes and preprocessing.

Merges research/slim's `nets_factory.networks_map`, each net's `default_image_size`
and `preprocessing_factory`'s name map into one table of `ModelSpec`s, and builds
models from it with the keras.applications-style keywords kslim accepts.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import inspect
import os
from typing import Any, Callable, Mapping

__all__ = ["ModelSpec", "create_model", "factories", "get_spec", "list_models",
           "register_model"]


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What slim knows about a net name.

    Attributes:
        name: the nets_factory name (`vgg_16`).
        model_class: the SlimModel subclass that builds it.
        image_size: slim's `default_image_size`.
        num_classes: the default class count (the zoo checkpoint's where one exists).
        preprocessing: the preprocessing_factory name for the net.
        scope: slim's top-level variable scope ('' for NASNet/PNASNet, which have none);
            also the default model name.
        defaults: constructor keywords this name fixes (`depth`, `depth_multiplier`, ...).
        aliases: keras-style names for the same factory (`vgg16`).
        num_frames: for the video nets (5-D NDHWC clips), the clip length to build
            for by default; None for image nets.
    """

    name: str
    model_class: type
    image_size: int
    num_classes: int
    preprocessing: str
    scope: str
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    num_frames: int | None = None

    @property
    def head_scopes(self) -> tuple[str, ...]:
        """Checkpoint scopes of the classifier heads (slim's checkpoint_exclude_scopes)."""
        prefix = f"{self.scope}/" if self.scope else ""
        return tuple(prefix + head for head in self.model_class.head_scopes)

    @property
    def zoo(self) -> tuple:
        """The model-zoo checkpoints of this net (see `kslim zoo list`)."""
        from kslim.models import zoo

        return zoo.entries_for(self.name)


_DEFAULT = object()  # "not given": the spec's (or zoo entry's) class count
_REGISTRY: dict[str, ModelSpec] = {}
_ALIASES: dict[str, str] = {}
_FACTORIES: dict[str, Callable[..., Any]] = {}  # name or alias -> factory function


def register_model(name: str, model_class: type, *, image_size: int, num_classes: int,
                   preprocessing: str, scope: str | None = None,
                   aliases: tuple[str, ...] = (), num_frames: int | None = None,
                   **defaults: Any) -> Callable[..., Any]:
    """Registers `name` and returns its factory function `fn(**kwargs) -> model`."""
    if name in _REGISTRY or name in _ALIASES:
        raise ValueError(f"model {name!r} is already registered")
    spec = ModelSpec(name, model_class, image_size, num_classes, preprocessing,
                     name if scope is None else scope, dict(defaults), tuple(aliases),
                     num_frames)
    _REGISTRY[name] = spec
    for alias in aliases:
        _ALIASES[alias] = name

    def factory(**kwargs: Any):
        return create_model(name, **kwargs)

    factory.__name__ = name
    factory.__qualname__ = name
    factory.__doc__ = (
        f"Creates slim's `{name}` ({model_class.__name__}); see `create_model` for the "
        f"keywords. Default image size {image_size}, {num_classes} classes, "
        f"`{preprocessing}` preprocessing.")
    for key in (name, *aliases):
        _FACTORIES[key] = factory
    return factory


def factories() -> dict[str, Callable[..., Any]]:
    """`{name or alias: factory}` for every registered net."""
    return dict(_FACTORIES)


def _canonical(name: str) -> str:
    if name in _REGISTRY:
        return name
    if name in _ALIASES:
        return _ALIASES[name]
    known = sorted([*_REGISTRY, *_ALIASES])
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown model name {name!r}{hint} "
                     f"(kslim.models.list_models() lists all {len(_REGISTRY)})")


def get_spec(name: str) -> ModelSpec:
    """The `ModelSpec` of a registered name or alias."""
    return _REGISTRY[_canonical(name)]


def list_models(pattern: str = "*") -> list[str]:
    """Registered nets_factory names matching the fnmatch `pattern`, sorted."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))


def create_model(model_name: str, /, *, num_classes: Any = _DEFAULT,
                 classes: int | None = None, include_top: bool = True,
                 weights: str | os.PathLike | None = None,
                 input_shape: tuple[int | None, int | None, int] | None = None,
                 pooling: str | None = None, classifier_activation: str | None = None,
                 **kwargs: Any):
    """Builds a registered net, with its weights.

    Args:
        model_name: a slim nets_factory name (`vgg_16`) or a keras-style alias (`vgg16`).
        num_classes: classifier outputs (`classes` is accepted as the
            keras.applications spelling); defaults to the spec's (the zoo
            checkpoint's) count. 0 or None returns the pre-logits features.
        include_top: False is `num_classes=0`.
        weights: None (initializers), `"slim"` or `"slim:<tag>"` (model zoo), a slim
            checkpoint prefix or folder, or a `.weights.h5` / `.keras` file. Zoo
            weights also take `strict=True` (a class count the checkpoint cannot
            give is an error, not a fresh classifier) and `sha256=` (pin the
            archive); see `kslim.models.zoo`.
        input_shape: (H, W, C) to build for; default the spec's image size, 3
            channels. Any size the net accepts works after building. The video nets
            (i3d, s3dg) take (frames, H, W, C), default the spec's `num_frames`.
        pooling: "avg" or "max" over the features when there is no classifier.
        classifier_activation: None (logits, as slim) or "softmax".
        **kwargs: the net's own options (`dropout_keep_prob`, `weight_decay`,
            `global_pool`, `spatial_squeeze`, `depth_multiplier`, ...), and `name`,
            the model's top-level scope (default slim's).

    Returns:
        A built `SlimModel`.
    """
    spec = get_spec(model_name)
    if classes is not None:
        if num_classes is not _DEFAULT and num_classes != classes:
            raise ValueError(f"{spec.name}: num_classes={num_classes} and classes={classes} "
                             "disagree; give one of them")
        num_classes = classes
    zoo_entry = None
    if isinstance(weights, str) and (weights == "slim" or weights.startswith("slim:")):
        from kslim.models import zoo

        zoo_entry = zoo.lookup(spec.name, weights)
        zoo_options = {key: kwargs.pop(key) for key in ("strict", "sha256") if key in kwargs}
        if num_classes is _DEFAULT:
            num_classes = zoo_entry.num_classes
        if input_shape is None:
            input_shape = (zoo_entry.image_size, zoo_entry.image_size, 3)
        kwargs = {**zoo_entry.kwargs, **kwargs}
    if num_classes is _DEFAULT:
        num_classes = spec.num_classes
    if not include_top:
        num_classes = 0
    _check_options(spec, kwargs)
    options = {"name": spec.scope or spec.name, **spec.defaults, **kwargs}
    model = spec.model_class(num_classes=num_classes, pooling=pooling,
                             classifier_activation=classifier_activation, **options)
    if input_shape is None:
        input_shape = (spec.image_size, spec.image_size, model.input_channels)
        if spec.num_frames:  # a video net: (frames, height, width, channels)
            input_shape = (spec.num_frames, *input_shape)
    if weights is None:
        return model.build_for(input_shape)
    # The checkpoint overwrites the initial values: draw initial values only for what
    # it does not provide (e.g. a new head).
    pending = model._build_deferred(input_shape)
    if zoo_entry is not None:
        from kslim.models import zoo

        report = zoo.load_weights(model, zoo_entry, **zoo_options)
    else:
        report = load_weights(model, weights)
    loaded = None
    if report is not None:
        names = set(report.loaded)
        loaded = {id(v) for name, v in _slim_variables(model).items() if name in names}
    for variable, initializer in pending:
        if loaded is not None and id(variable) not in loaded:
            variable.assign(initializer(variable.shape, variable.dtype))
    return model


def _slim_variables(model):
    from kslim.compat import slim_variables

    return slim_variables(model)


def _check_options(spec: ModelSpec, kwargs: Mapping[str, Any]) -> None:
    """Unknown keywords fail naming the net, the option and what it accepts."""
    accepted = set()
    for cls in spec.model_class.__mro__:
        if cls.__module__.startswith("keras"):
            break
        accepted |= set(inspect.signature(cls.__init__).parameters)
    accepted -= {"self", "args", "kwargs", "num_classes", "pooling", "classifier_activation"}
    accepted -= set(spec.defaults)
    for key, value in kwargs.items():
        if key not in accepted:
            raise ValueError(
                f"{spec.name}: unknown option {key}={value!r}; it takes "
                f"{', '.join(sorted(accepted))} (plus num_classes, weights, input_shape, "
                "include_top, pooling, classifier_activation)")


def load_weights(model, weights: str | os.PathLike, **restore_kwargs: Any):
    """Loads a `.weights.h5`/`.keras` file with Keras, anything else as a slim checkpoint
    through `kslim.compat.restore` (which checks everything before changing a weight)."""
    path = os.fspath(weights)
    if path.endswith((".weights.h5", ".keras")):
        if not os.path.exists(path):
            raise FileNotFoundError(f"weights file {path!r} does not exist")
        model.load_weights(path)
        return None
    from kslim import compat

    check = getattr(model, "check_checkpoint", None)  # a net's own clearer errors (SSD)
    if check is not None:
        check(path, rename=restore_kwargs.get("rename"))
    return compat.restore(model, path, **restore_kwargs)
