"""The frozen inference graph: research/slim `export_inference_graph.py` + `freeze_graph`.

slim's script writes the eval graph of a net (a float placeholder named `input`,
`[batch_size, image_size, image_size, 3]`) and users freeze a checkpoint into it with
`--output_node_names`, e.g. `InceptionV3/Predictions/Reshape_1`. `to_frozen_graph`
writes that GraphDef in one step, the weights already frozen in as constants, with
output nodes named as slim's:
- `<scope>/Predictions/Reshape_1` (`predictions` for the ResNets): the softmax
  probabilities, the node of slim's `Predictions` end point (`slim.softmax`'s output);
- nets whose slim graph has no predictions end point (vgg, alexnet_v2, overfeat)
  name their logits as slim's squeezed `fc8`: `<scope>/fc8/squeezed`; their
  probabilities are `<scope>/Predictions/Reshape_1` as for the other nets;
- `logits`: the logits, for users who want them.
The GraphDef imports into a `tf.compat.v1` graph and runs in a `Session` with no kslim
installed (`tf.compat.v1.import_graph_def`).
"""

from __future__ import annotations

import os

from kslim.export._files import check_output, write_atomically

__all__ = ["frozen_graph_def", "output_node_names", "to_frozen_graph"]

# Nets whose slim graph returns squeezed fc8 logits and has no softmax end point.
_SQUEEZED_FC8 = ("vgg_", "alexnet_v2", "overfeat")


def output_node_names(model) -> dict[str, str]:
    """{"predictions": slim's predictions node, "logits": the logits node}: the
    names `to_frozen_graph` gives the outputs of `model` (a kslim net)."""
    scope = getattr(model, "scope", "") or ""
    prefix = f"{scope}/" if scope else ""
    slim_name = getattr(model, "slim_name", "") or ""
    # research/slim's ResNets (v1 and v2) key their softmax end point `predictions`.
    key = "predictions" if slim_name.startswith("resnet_") else "Predictions"
    names = {"predictions": f"{prefix}{key}/Reshape_1", "logits": "logits"}
    if slim_name.startswith(_SQUEEZED_FC8):
        names["logits"] = f"{prefix}fc8/squeezed"
    return names


def frozen_graph_def(model, *, image_size: int | None = None, batch_size: int | None = None,
                     channels: int | None = None):
    """The GraphDef of `model`'s eval-mode call with its weights as constants.

    Args:
        model: a built kslim net.
        image_size: input height and width (default: the size the model was built for;
            a video net's clip length is the one it was built for).
        batch_size: fixed batch dimension of `input` (None: any, as slim's default).
        channels: input channels (default: the model's).

    Returns:
        `(graph_def, {"input": "input", "predictions": ..., "logits": ...})`.
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2)

    built = tuple(getattr(model, "_built_input_shape", None) or (None, None, None))
    frames = built[:-3]  # video nets (i3d, s3dg): (frames,) before (H, W, C)
    size = image_size or built[-3]
    channels = channels or built[-1] or getattr(model, "input_channels", 3)
    if not size:
        raise ValueError(f"{model.name}: give image_size (--image_size); the model was not "
                         "built for a fixed size")
    names = output_node_names(model)
    spec = tf.TensorSpec([batch_size, *frames, size, size, channels], tf.float32,
                         name="input")

    def serve(input):  # noqa: A002 (slim's placeholder name)
        logits = tf.cast(model(input, training=False), tf.float32)
        flat = tf.reshape(logits, [-1, logits.shape[-1]])
        # Absolute name scopes ("a/b/"): the nodes get exactly slim's names.
        predictions_scope, predictions_op = names["predictions"].rsplit("/", 1)
        with tf.name_scope(predictions_scope + "/"):
            probabilities = tf.reshape(tf.nn.softmax(flat), tf.shape(logits),
                                       name=predictions_op)
        scope, op = (names["logits"].rsplit("/", 1) if "/" in names["logits"]
                     else ("", names["logits"]))
        with tf.name_scope(scope + "/" if scope else ""):
            logits = tf.identity(logits, name=op)
        return probabilities, logits

    concrete = tf.function(serve).get_concrete_function(spec)
    frozen = convert_variables_to_constants_v2(concrete)
    graph_def = frozen.graph.as_graph_def()
    present = {node.name for node in graph_def.node}
    for key in ("predictions", "logits"):
        if names[key] not in present:  # a kslim layer took the name first
            raise RuntimeError(f"{model.name}: the frozen graph has no node {names[key]!r}")
    return graph_def, {"input": "input", **names}


def to_frozen_graph(model, output_file: str | os.PathLike, *, image_size: int | None = None,
                    batch_size: int | None = None, channels: int | None = None,
                    as_text: bool = False, overwrite: bool = False) -> str:
    """Writes `model` as a frozen inference GraphDef (see the module docstring).

    Example:
        >>> model = kslim.models.create_model("inception_v3", weights="slim")
        >>> kslim.export.to_frozen_graph(model, "inception_v3_frozen.pb")
        >>> # in TF1: import_graph_def, then run "InceptionV3/Predictions/Reshape_1:0"
        >>> # feeding "input:0" a preprocessed float batch

    Args:
        model: a built kslim net.
        output_file: the `.pb` (binary GraphDef) to write; `as_text`: a `.pbtxt`
            (slim's `--write_text_graphdef`).
        image_size, batch_size, channels: the `input` placeholder's shape.
        overwrite: replace an existing file.

    Returns:
        The path written.
    """
    from google.protobuf import text_format

    path = check_output(output_file, overwrite)
    graph_def, _ = frozen_graph_def(model, image_size=image_size, batch_size=batch_size,
                                    channels=channels)
    content = (text_format.MessageToString(graph_def).encode("utf-8") if as_text
               else graph_def.SerializeToString())
    return write_atomically(path, content)
