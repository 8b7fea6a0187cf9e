"""`kslim export --format=tflite|frozen_graph`: the file formats behind `ExportConfig`.

`kslim.training._infer.export` builds the net with its weights (as for a SavedModel)
and hands it here for the other formats.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Sequence

from kslim.export._files import check_output

__all__ = ["FORMATS", "check_format", "export_file", "recorded_quantization_ranges"]

log = logging.getLogger("kslim")

FORMATS = ("saved_model", "tflite", "frozen_graph")
# contrib.quantize's fake-quantization variables (`<scope>/act_quant/min`, ...).
_FAKE_QUANT = re.compile(r"/(act_quant|weights_quant)[^/]*/(min|max)$")


def check_format(config) -> None:
    """Flag combinations, checked before anything is built or written.

    Raises:
        ValueError: unknown `--format`, `--quantize` for a format other than tflite, an
            unknown `--quantize` mode, an `--output_file` that exists (without
            `--overwrite`).
    """
    from kslim.export._tflite import QUANTIZE_MODES

    if config.format not in FORMATS:
        raise ValueError(f"--format={config.format!r}: choose {', '.join(FORMATS)}")
    quantize = config.quantize or None
    if quantize is True or str(quantize).lower() in ("true", "1", "yes"):
        raise ValueError("--quantize: quantized export (TF1 contrib_quantize graph) is not "
                         "supported by kslim; for a quantized TFLite file give "
                         "--format=tflite --quantize=int8 (or float16, dynamic)")
    if quantize is not None and quantize not in QUANTIZE_MODES:
        raise ValueError(f"--quantize={quantize!r}: choose {', '.join(QUANTIZE_MODES)} "
                         "(TFLite post-training quantization)")
    if quantize is not None and config.format != "tflite":
        raise ValueError(f"--quantize={quantize} applies to --format=tflite only, not "
                         f"--format={config.format}")
    if config.format != "saved_model":  # before the net is built: fail fast
        check_output(config.output_file or config.output_dir, config.overwrite)


def recorded_quantization_ranges(weights) -> list[str]:
    """The fake-quantization min/max variables (contrib.quantize's `act_quant` and
    `weights_quant`) of a checkpoint or a `_quant` zoo entry; [] for float ones."""
    from kslim import compat
    from kslim.models import zoo

    if weights is None:
        return []
    weights = os.fspath(weights)
    if weights.endswith((".weights.h5", ".keras")):
        return []
    if weights == "slim" or weights.startswith("slim:"):
        try:
            entry = zoo.get(weights[len("slim:"):]) if ":" in weights else None
        except zoo.ZooError:
            return []
        if entry is None or not getattr(entry, "quantized", False):
            return []
        weights = zoo.cached_checkpoint(entry)
        if weights is None:
            return [f"{entry.tag} (not downloaded)"]
    try:
        names = [name for name, _, _ in compat.list_checkpoint(weights)]
    except Exception:  # noqa: BLE001 (not a checkpoint: the loader already said so)
        return []
    return sorted(n for n in names if _FAKE_QUANT.search(n))


def export_file(config, model, *, image_size: int, preprocessing_name: str,
                labels: Sequence[str] | None) -> str:
    """Writes `model` in `config.format` (tflite or frozen_graph); returns the path."""
    from kslim import export

    output = config.output_file or config.output_dir
    if config.format == "frozen_graph":
        return export.to_frozen_graph(model, output, image_size=image_size,
                                      batch_size=config.batch_size,
                                      as_text=config.write_text_graphdef,
                                      overwrite=config.overwrite)
    quantize = config.quantize or None
    calibration = None
    if quantize == "int8":
        ranges = recorded_quantization_ranges(config.weights)
        if ranges:
            # Applying them needs fake-quant ops where contrib.quantize put them (after
            # each folded conv and activation); kslim's Keras nets have none, so the
            # ranges of the quantization-aware training are not used.
            message = (f"--quantize=int8: {config.weights} records fake-quantization ranges "
                       f"({len(ranges)} min/max variables, e.g. {ranges[0]}); kslim does not "
                       f"apply them and calibrates on {config.num_steps} images of "
                       f"{config.dataset_name}/{config.dataset_split_name} instead")
            print(message, flush=True)
            log.warning("%s", message)
        channels = int(model._built_input_shape[-1]) if getattr(
            model, "_built_input_shape", None) else 3
        calibration = export.calibration_images(
            config.dataset_name, config.dataset_split_name, config.dataset_dir,
            preprocessing_name, image_size, config.num_steps, channels)
    return export.to_tflite(model, output, quantize=quantize,
                            representative_data=calibration, num_steps=config.num_steps,
                            batch_size=config.batch_size,
                            preprocessing_name=preprocessing_name, labels=labels,
                            overwrite=config.overwrite)
