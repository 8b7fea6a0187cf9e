"""Fine-tuning controls: `--trainable_scopes` and the `--checkpoint_path` warm start.

Mirrors `_get_variables_to_train` and `_get_init_fn` of research/slim
`train_image_classifier.py`:

- `set_trainable_scopes(model, scopes)` trains only the variables under the given
  scopes. Whole layers outside them are frozen at the layer level (`layer.trainable =
  False`), so a frozen BatchNorm also stops using batch statistics and updating its
  moving averages (Keras's inference-mode BatchNorm). That is the one difference from
  slim, which kept frozen BatchNorm layers in training mode (the source of the
  "fine-tuned model is worse in eval" reports, tensorflow/models#391, #3556). A scope
  that covers only some variables of a layer (`LeNet/fc4/weights`) freezes the others
  one by one.
- `warm_start(model, checkpoint_path, ...)` restores a checkpoint at step 0, excluding
  `checkpoint_exclude_scopes`, through `kslim.compat.restore` (all or nothing, with a
  report); it does nothing when `train_dir` already holds a checkpoint, as slim ("Ignoring
  --checkpoint_path because a checkpoint already exists in train_dir").

Scopes are matched as in `kslim.compat.restore`: a slim scope prefix ending at a `/`
boundary (`InceptionV3/Logits` matches `InceptionV3/Logits/Conv2d_1c_1x1/weights`, not
`InceptionV3/Logits2`), or a glob (`*/AuxLogits`).
"""

from __future__ import annotations

import fnmatch
import logging
import os
from typing import Iterable

__all__ = ["in_scopes", "parse_scopes", "set_trainable_scopes", "warm_start"]

log = logging.getLogger("kslim")


def parse_scopes(scopes: str | Iterable[str] | None) -> list[str]:
    """A comma-separated flag value (or a list) as a list of stripped scopes."""
    if scopes is None:
        return []
    if isinstance(scopes, str):
        scopes = scopes.split(",")
    return [s.strip().rstrip("/") for s in scopes if s and s.strip()]


def in_scopes(name: str, scopes: Iterable[str]) -> bool:
    """True when the slim variable `name` lies under one of `scopes`."""
    for scope in scopes:
        if any(ch in scope for ch in "*?["):
            if fnmatch.fnmatchcase(name, scope) or fnmatch.fnmatchcase(name, scope + "/*"):
                return True
        elif name == scope or name.startswith(scope + "/"):
            return True
    return False


def set_trainable_scopes(model, scopes: str | Iterable[str] | None) -> list[str]:
    """Trains only the variables under `scopes` (slim's `--trainable_scopes`).

    Call it before `compile`. None or empty trains every trainable variable (slim's
    default) and changes nothing.

    Args:
        model: a built kslim model.
        scopes: comma-separated string or list of slim scopes (or globs).

    Returns:
        The slim names of the variables that will train.

    Raises:
        ValueError: a scope that matches no trainable variable (a typo would
            otherwise train nothing), naming the model's top-level scopes.

    Example:
        >>> set_trainable_scopes(model, "InceptionV1/Logits")   # train the new head only
    """
    from kslim import compat

    names = {id(v): n for n, v in compat.slim_variables(model).items()}
    trainable = {n for v in model.trainable_weights for n in [names.get(id(v))] if n}
    scopes = parse_scopes(scopes)
    if not scopes:
        return sorted(trainable)
    selected = {n for n in trainable if in_scopes(n, scopes)}
    unmatched = [s for s in scopes if not any(in_scopes(n, [s]) for n in trainable)]
    if unmatched:
        tops = sorted({"/".join(n.split("/")[:2]) for n in trainable})
        shown = ", ".join(tops[:12]) + (", ..." if len(tops) > 12 else "")
        raise ValueError(f"trainable_scopes {', '.join(unmatched)} match no trainable variable "
                         f"of model {model.name!r}; its scopes are {shown}")

    def visit(layer):
        weights = layer.weights
        if not any(names.get(id(v)) in selected for v in weights):
            layer.trainable = False
            return
        children = list(layer._flatten_layers(include_self=False, recursive=False))
        owned_by_children = {id(v) for child in children for v in child.weights}
        for variable in weights:
            if id(variable) not in owned_by_children and names.get(id(variable)) not in selected:
                variable.trainable = False
        for child in children:
            visit(child)

    visit(model)
    return sorted(selected)


def warm_start(model, checkpoint_path: str | os.PathLike | None, *,
               checkpoint_exclude_scopes: str | Iterable[str] | None = None,
               ignore_missing_vars: bool = False, train_dir: str | os.PathLike | None = None,
               model_name: str | None = None, checkpoint_model_scope: str | None = None):
    """slim's `_get_init_fn`: fine-tune from `checkpoint_path` at step 0.

    Args:
        model: a built kslim model.
        checkpoint_path: a checkpoint prefix or a folder (its newest checkpoint), or
            `"slim"` / `"slim:<tag>"` for the model zoo's checkpoint (fetched into the
            cache); None does nothing.
        checkpoint_exclude_scopes: scopes left as initialized (typically the new
            classifier, e.g. `InceptionV3/Logits,InceptionV3/AuxLogits`).
        ignore_missing_vars: restore what the checkpoint has, as slim's flag.
        train_dir: when it already holds a checkpoint, training resumes from there
            instead and the warm start is skipped (slim's order).
        model_name: the registered net name, for `"slim"` (default: the model's).
        checkpoint_model_scope: the checkpoint's top-level scope when it differs from the
            model's (`train_ssd_network.py`'s flag: `vgg_16` for an SSD's backbone); the
            model scope is renamed to it, and `"slim"` means that net's zoo checkpoint.

    Returns:
        The `kslim.compat.RestoreReport`, or None when nothing was restored.
    """
    from kslim import compat

    if not checkpoint_path:
        return None
    if train_dir and compat.resolve_checkpoint(train_dir=train_dir) is not None:
        log.info("Ignoring --checkpoint_path because a checkpoint already exists in %s",
                 train_dir)
        return None
    scope = (checkpoint_model_scope or "").strip().rstrip("/")
    path = os.fspath(checkpoint_path)
    if path == "slim" or path.startswith("slim:"):
        from kslim.models import zoo

        entry = zoo.lookup(scope or model_name or model.slim_name, path)
        path = zoo.fetch(entry)
    return compat.restore(model, path, exclude=parse_scopes(checkpoint_exclude_scopes),
                          ignore_missing=ignore_missing_vars,
                          rename={model.scope or model.name: scope} if scope else None)
