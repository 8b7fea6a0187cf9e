"""Slim's partial restore, made safe: plan everything, check everything, then assign.

Mirrors what slim users did with `slim.get_variables_to_restore(include, exclude)`,
a `{name_in_checkpoint: variable}` map and `slim.assign_from_checkpoint_fn`
(tf_slim `ops/variables.py`), with the failure modes of that path (names that do not
match, shape mismatches, optimizer slots, 1001-class heads) reported instead of
half-loading.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import os
import re
from typing import Callable, Iterable, Mapping

from kslim.compat._checkpoint import (CheckpointError, checkpoint_prefix, open_checkpoint,
                                     read_tensor, reading_lock)

__all__ = ["RestoreReport", "restore", "slim_variables", "is_auxiliary"]

log = logging.getLogger("kslim")

EMA_SUFFIX = "/ExponentialMovingAverage"
# Names a checkpoint may carry besides model variables: skipped without complaint.
_AUXILIARY = re.compile(
    r"(^|/)global_step$"
    r"|/(Momentum|RMSProp(_1)?|Adam(_1)?|Adagrad|Adadelta(_1)?|Ftrl(_1)?|"
    r"ExponentialMovingAverage|LARS|accumulator|velocity)$"
    r"|^beta[12]_power$|^OptimizerState|^_CHECKPOINTABLE_OBJECT_GRAPH$")


def is_auxiliary(name: str) -> bool:
    """True for `global_step`, optimizer slots and moving-average shadows."""
    return bool(_AUXILIARY.search(name))


def slim_variables(model) -> dict[str, object]:
    """`{slim name: keras variable}`, slim's `get_model_variables()` for a kslim model.

    The slim name is the weight's Keras path; nets without a slim top-level scope
    (NASNet, PNASNet) drop the model-name prefix.
    """
    strip = "" if getattr(model, "has_slim_scope", True) else model.name + "/"
    names = {}
    for variable in model.weights:
        name = variable.path
        if strip and name.startswith(strip):
            name = name[len(strip):]
        if name in names:
            raise ValueError(f"two weights of model {model.name!r} share the slim name "
                             f"{name!r}; give their layers distinct names")
        names[name] = variable
    return names


def _scope_match(name: str, patterns: Iterable[str]) -> bool:
    """slim's checkpoint_exclude_scopes: a scope prefix (at a '/' boundary) or a glob."""
    for pattern in patterns:
        pattern = pattern.strip().rstrip("/")
        if not pattern:
            continue
        if any(ch in pattern for ch in "*?["):
            if fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(name, pattern + "/*"):
                return True
        elif name == pattern or name.startswith(pattern + "/"):
            return True
    return False


def _as_list(patterns) -> list[str]:
    if patterns is None:
        return []
    if isinstance(patterns, str):
        return [p for p in patterns.split(",") if p.strip()]
    return list(patterns)


def _renamer(rename) -> Callable[[str], str]:
    if rename is None:
        return lambda name: name
    if callable(rename):
        return rename
    if not isinstance(rename, Mapping):
        raise TypeError(f"rename must be a mapping {{model_prefix: checkpoint_prefix}} or a "
                        f"callable, got {type(rename).__name__}")
    # Longest prefix first, so {"a/b": "x", "a": "y"} maps "a/b/c" to "x/c".
    rules = sorted(rename.items(), key=lambda item: -len(item[0]))

    def apply(name: str) -> str:
        for old, new in rules:
            old = old.rstrip("/")
            if name == old or name.startswith(old + "/") or not old:
                rest = name[len(old):].lstrip("/") if old else name
                if not rest:  # an exact variable name: the checkpoint tensor's name
                    return new.rstrip("/")
                return f"{new.rstrip('/')}/{rest}" if new else rest
        return name

    return apply


def _read_all(reader, prefix: str, names: list[str], dtypes: list) -> list:
    """Every tensor `names` as TF tensors, with TensorFlow's own `RestoreV2` op (one
    pass over the files, V1 or V2, faster than one reader call per tensor). On a
    failure the per-tensor reader finds which variable is unreadable for the message."""
    import tensorflow as tf

    try:
        with tf.device("/cpu:0"):
            return tf.raw_ops.RestoreV2(prefix=prefix, tensor_names=names,
                                        shape_and_slices=[""] * len(names), dtypes=dtypes)
    except (tf.errors.OpError, ValueError) as e:
        for name in names:
            read_tensor(reader, prefix, name)  # raises naming the variable
        raise CheckpointError(f"cannot read checkpoint {prefix!r}: {str(e).splitlines()[0]}"
                              ) from None


@dataclasses.dataclass
class RestoreReport:
    """What `restore` did. Every list holds model-side slim names, except `unused`
    (checkpoint names no model variable took)."""

    checkpoint: str
    loaded: list[str] = dataclasses.field(default_factory=list)
    missing: list[str] = dataclasses.field(default_factory=list)
    unused: list[str] = dataclasses.field(default_factory=list)
    mismatched: list[str] = dataclasses.field(default_factory=list)
    excluded: list[str] = dataclasses.field(default_factory=list)
    sources: dict[str, str] = dataclasses.field(default_factory=dict)  # slim name -> ckpt
    notes: list[str] = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        total = len(self.loaded) + len(self.missing) + len(self.mismatched)
        lines = [f"restored {len(self.loaded)} of {total} variables from {self.checkpoint} "
                 f"({len(self.excluded)} excluded, {len(self.missing)} missing, "
                 f"{len(self.mismatched)} mismatched, {len(self.unused)} unused in the "
                 "checkpoint)"]
        for label, names in (("excluded", self.excluded), ("missing", self.missing),
                             ("unused", self.unused)):
            if names:
                shown = ", ".join(names[:8]) + (f", ... ({len(names) - 8} more)"
                                                if len(names) > 8 else "")
                lines.append(f"  {label}: {shown}")
        lines.extend(f"  mismatched: {note}" for note in self.notes)
        return "\n".join(lines)


def _plan_error(prefix: str, problems: list[str], hint: str) -> CheckpointError:
    shown = "\n  ".join(problems[:10])
    more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
    return CheckpointError(f"cannot restore from {prefix}; no weight was changed:\n  "
                           f"{shown}{more}\n{hint}")


def restore(model, path: str | os.PathLike, include=None, exclude=None, rename=None,
            use_moving_average: bool = False, label_offset: int | None = None,
            strict: bool = False, ignore_missing: bool = False,
            dry_run: bool = False, allow_shared: bool = False) -> RestoreReport:
    """Restores a kslim model's weights from a slim checkpoint, all or nothing.

    Args:
        model: a built kslim model (or any Keras model whose weight paths are slim names).
        path: a checkpoint prefix, one of its files, a V1 file, or a folder (newest).
        include: scopes or globs to restore (default all).
        exclude: scopes or globs to leave untouched (slim's checkpoint_exclude_scopes);
            a comma-separated string is accepted.
        rename: `{model_prefix: checkpoint_prefix}` (e.g. `{"ssd_vgg_512": "vgg_16"}`)
            or a callable `name_in_checkpoint(slim_name) -> str`. A key is a scope or
            an exact variable name (`{"LeNet/fc4/biases": "Head/bias"}`); the longest
            matching key wins.
        use_moving_average: read `<name>/ExponentialMovingAverage` where present.
        label_offset: drop the first `label_offset` classes of the checkpoint's
            classifier (1 takes a 1001-class checkpoint into a 1000-class model).
        strict: make every missing, mismatched or unused variable an error.
        ignore_missing: restore what the checkpoint has (slim's ignore_missing_vars).
            Variables under the model's `optional_scopes` (heads slim builds only in
            its training graph, such as NASNet's aux head) may always be missing
            unless `strict`.
        dry_run: plan and check only; read and assign nothing (`report.loaded` lists
            what would load).
        allow_shared: let several model variables load the same checkpoint tensor.
            By default that is an error naming them, since a `rename` that maps two
            variables onto one tensor is almost always a mistake.

    Returns:
        A `RestoreReport`; `str(report)` is a readable summary.

    Raises:
        CheckpointError: unreadable checkpoint, variables missing (unless
            `ignore_missing`), a shape mismatch outside the classifier head (inside it
            with `strict`), a dtype mismatch (naming the variables and both dtypes),
            several variables mapped to one tensor (unless `allow_shared`), or nothing
            to restore at all. No weight changes when it raises.
    """
    # A shared lock: a concurrent kslim save cannot swap the files while they are read.
    with reading_lock(checkpoint_prefix(path)):
        return _restore(model, path, include, exclude, rename, use_moving_average,
                        label_offset, strict, ignore_missing, dry_run, allow_shared)


def _restore(model, path, include, exclude, rename, use_moving_average, label_offset,
             strict, ignore_missing, dry_run, allow_shared) -> RestoreReport:
    prefix, reader = open_checkpoint(path)
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    to_checkpoint = _renamer(rename)
    include, exclude = _as_list(include), _as_list(exclude)
    heads = _as_list(getattr(model, "head_scopes", ()))
    scope = getattr(model, "scope", "")
    head_prefixes = [f"{scope}/{h}" if scope else h for h in heads]
    optional = [f"{scope}/{o}" if scope else o
                for o in _as_list(getattr(model, "optional_scopes", ()))]

    report = RestoreReport(checkpoint=prefix)
    plan: list[tuple[str, object, str, tuple]] = []  # (slim name, variable, ckpt name, slice)
    problems: list[str] = []
    matched: set[str] = set()  # checkpoint names some model variable asked for
    dtype_clashes: list[tuple[str, object, str]] = []
    for name, variable in slim_variables(model).items():
        if (include and not _scope_match(name, include)) or _scope_match(name, exclude):
            report.excluded.append(name)
            continue
        source = to_checkpoint(name)
        if use_moving_average and source + EMA_SUFFIX in shapes:
            source += EMA_SUFFIX
        if source not in shapes:
            report.missing.append(name)
            continue
        matched.add(source)
        want = tuple(variable.shape)
        have = tuple(shapes[source])
        dtype = dtypes[source].name
        if dtype != variable.dtype:
            dtype_clashes.append((name, variable, source))
            report.mismatched.append(name)
            problems.append(f"{name}: checkpoint {source!r} is {dtype}, the model's "
                            f"variable is {variable.dtype}")
            continue
        index = ()
        if have != want:
            offset = label_offset or 0
            if (offset and len(have) == len(want) and have[:-1] == want[:-1]
                    and have[-1] - offset == want[-1]):
                index = (..., slice(offset, None))
            else:
                report.mismatched.append(name)
                note = f"{name}: checkpoint {source!r} has shape {list(have)}, model {list(want)}"
                in_head = _scope_match(name, head_prefixes)
                if in_head and not strict:
                    report.notes.append(note + " (left as initialized)")
                else:
                    problems.append(note)
                continue
        plan.append((name, variable, source, index))
        report.sources[name] = source

    used = matched | {to_checkpoint(n) for n in report.excluded}
    used |= {s[: -len(EMA_SUFFIX)] for s in used if s.endswith(EMA_SUFFIX)}
    report.unused = sorted(n for n in shapes if n not in used and not is_auxiliary(n))

    if not matched and report.missing:
        sample_model = ", ".join((report.missing or report.mismatched)[:3])
        sample_ckpt = ", ".join(sorted(n for n in shapes if not is_auxiliary(n))[:3])
        raise CheckpointError(
            f"no variable of model {model.name!r} was found in checkpoint {prefix}: the "
            f"model has e.g. {sample_model}; the checkpoint has e.g. {sample_ckpt}. Pass "
            "rename={model_prefix: checkpoint_prefix} (or a callable) to map the names.")
    shared: dict[str, list[str]] = {}
    for name, source in report.sources.items():
        shared.setdefault(source, []).append(name)
    if not allow_shared:
        problems += [f"{' and '.join(names)}: all map to checkpoint tensor {source!r} "
                     "(check rename=; pass allow_shared=True if that is meant)"
                     for source, names in shared.items() if len(names) > 1]
    if report.missing and not ignore_missing:
        problems += [f"{n}: not in the checkpoint (looked for {to_checkpoint(n)!r})"
                     for n in report.missing if strict or not _scope_match(n, optional)]
    if strict and report.unused:
        problems += [f"{n}: in the checkpoint but not in the model" for n in report.unused]
    if problems:
        casts = sorted({f"{dtypes[source].name} -> {variable.dtype}"
                        for _, variable, source in dtype_clashes})
        if casts:
            problems.insert(0, (
                f"{len(dtype_clashes)} variable(s) have another dtype in the checkpoint "
                f"({', '.join(casts)}): write the tensors in the model's dtype (read them "
                "with tf.train.load_checkpoint, cast, save with kslim.compat.write_checkpoint)"))
        raise _plan_error(prefix, problems,
                          "Exclude what should stay as initialized (exclude=[scopes]), map "
                          "names with rename=, pass ignore_missing=True to skip variables the "
                          "checkpoint lacks, or label_offset=1 for a 1001-class checkpoint "
                          "into a 1000-class model.")

    if not plan and (report.missing or report.mismatched):
        raise CheckpointError(f"nothing of model {model.name!r} would be restored from "
                              f"checkpoint {prefix}:\n{report}")
    if dry_run:
        report.loaded = [name for name, *_ in plan]
        return report
    # Read everything before the first assignment: a truncated file fails here.
    values = _read_all(reader, prefix, [source for _, _, source, _ in plan],
                       [dtypes[source] for _, _, source, _ in plan])
    for (name, variable, _, index), value in zip(plan, values):
        variable.assign(value[index] if index else value)
        report.loaded.append(name)
    if report.mismatched or report.missing:
        log.warning("%s", report)
    return report
