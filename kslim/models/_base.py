"""The Keras model class every kslim net derives from.

A slim net function returns `(net, end_points)`; a kslim net implements
`forward(x, training) -> (net, end_points)` and this base class turns it into the
Keras surface: `call()` returns the logits (or the pre-logits features when the
net has no classifier), `endpoints()` returns slim's `end_points` dict, and models
with auxiliary heads return `{"logits", "aux_logits"}` in training mode, with the
auxiliary loss weighted as in slim's `train_image_classifier.py` (0.4).
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from kslim.models._layers import deferred_initializers

__all__ = ["SlimModel"]

POOLINGS = (None, "avg", "max")


class SlimModel(keras.Model):
    """Base class of the kslim nets.

    Subclasses set:
        slim_name: the nets_factory name (used in messages).
        head_scopes: scopes (relative to the model scope) of the classifier heads,
            the variables slim's fine-tuning recipes exclude (`fc8`, `Logits`, ...).
        has_slim_scope: False for nets whose slim variables have no top-level scope
            (NASNet, PNASNet): the model name is then not part of the slim names.
    and implement `forward(x, training)` and `min_input_size`.

    Args:
        num_classes: classifier outputs; 0 or None returns the pre-logits features.
        classifier_activation: None (logits, as slim) or an activation name applied
            to the classifier output ("softmax").
        pooling: for features (num_classes 0/None): None keeps slim's output,
            "avg"/"max" reduce the spatial dimensions (keras.applications' pooling).
        name: the model's top-level scope (slim's `scope` argument).
    """

    slim_name: str = ""
    head_scopes: tuple[str, ...] = ()
    aux_output: str | None = None  # end point returned as "aux_logits" when training
    # Scopes (relative, globs allowed) whose variables slim builds only in its training
    # graph, so eval-graph checkpoints lack them: restore leaves them as initialized.
    optional_scopes: tuple[str, ...] = ()
    aux_loss_weight: float = 0.4
    has_slim_scope: bool = True
    input_channels: int = 3  # channels of the default build (create_model)

    def __init__(self, num_classes: int | None = 1000, classifier_activation: str | None = None,
                 pooling: str | None = None, name: str | None = None, **kwargs):
        super().__init__(name=name or self.slim_name, **kwargs)
        if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 0):
            raise ValueError(f"{self.name}: num_classes must be a non-negative int or "
                             f"None, got {num_classes!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"{self.name}: pooling must be one of {POOLINGS}, "
                             f"got {pooling!r}")
        self.num_classes = num_classes or 0
        self.classifier_activation = classifier_activation
        self._classifier_activation = (
            keras.activations.get(classifier_activation) if classifier_activation else None)
        self.pooling = pooling

    # -- what subclasses provide ---------------------------------------------------------

    @property
    def min_input_size(self) -> int:
        """Smallest height/width the net accepts."""
        return 1

    def _base_config(self) -> dict:
        return {"num_classes": self.num_classes, "name": self.name,
                "classifier_activation": self.classifier_activation,
                "pooling": self.pooling}

    # -- Keras surface ----------------------------------------------------------------

    @property
    def scope(self) -> str:
        """The slim scope prefix of this model's variables ('' when slim has none)."""
        return self.name if self.has_slim_scope else ""

    def check_input_shape(self, shape) -> None:
        """Raises a ValueError naming the net, what it needs and what it was given."""
        shape = tuple(shape)
        if len(shape) != 4:
            raise ValueError(f"{self.slim_name} ({self.name}) expects a 4-D NHWC batch of "
                             f"images, got shape {shape}")
        channels = getattr(self, "_built_channels", None)
        if shape[-1] is not None and channels is not None and shape[-1] != channels:
            raise ValueError(f"{self.slim_name} ({self.name}) was built for {channels} "
                             f"input channels (NHWC), got {shape[-1]} in shape {shape}")
        need = self.min_input_size
        for axis, size in (("height", shape[1]), ("width", shape[2])):
            if size is not None and size < need:
                raise ValueError(f"{self.slim_name} ({self.name}) needs images of at least "
                                 f"{need}x{need}, got {axis} {size} in shape {shape}")
        empty = [size for size in shape[1:] if size is not None and size <= 0]
        if empty:  # height and width are named above; this is the channels
            raise ValueError(f"{self.slim_name} ({self.name}): input shape {shape[1:]} has a "
                             f"dimension of {empty[0]}; give (height, width, channels) with "
                             "every size positive, e.g. (224, 224, 3)")

    def _as_float(self, inputs):
        """Integer (uint8 images) and bool inputs cast to the compute dtype, as Keras
        already does for float64."""
        dtype = keras.backend.standardize_dtype(inputs.dtype)
        if "int" in dtype or dtype == "bool":
            inputs = keras.ops.cast(inputs, self.compute_dtype)
        return inputs

    def _run(self, inputs, training):
        self.check_input_shape(inputs.shape)
        inputs = self._as_float(inputs)
        built = getattr(self, "_built_input_shape", None)
        given = tuple(inputs.shape[1:])
        if built is None or len(given) != len(built) or all(
                g is None or g == b for g, b in zip(given, built)):
            net, end_points = self.forward(inputs, training=training)
        else:
            try:
                net, end_points = self.forward(inputs, training=training)
            except (ValueError, tf.errors.InvalidArgumentError) as e:
                if isinstance(e, ValueError) and self.slim_name in str(e):
                    raise  # the net's own message (spatial_squeeze, aux head) says more
                raise ValueError(
                    f"{self.slim_name} ({self.name}) was built for inputs of shape "
                    f"(batch, {', '.join(map(str, built))}), got {tuple(inputs.shape)}: its "
                    "weights do not fit that image size. Resize the images, or create the "
                    f"model with input_shape={given}") from None
        if not self.num_classes and self.pooling and len(net.shape) == 4:
            reduce = tf.reduce_mean if self.pooling == "avg" else tf.reduce_max
            net = reduce(net, axis=[1, 2])
        elif self.num_classes and self._classifier_activation is not None:
            net = self._classifier_activation(net)
        return net, end_points

    def call(self, inputs, training=None):
        net, end_points = self._run(inputs, training)
        if training and self.aux_output and self.aux_output in end_points:
            return {"logits": net, "aux_logits": end_points[self.aux_output]}
        return net

    def endpoints(self, inputs, training=False) -> dict[str, Any]:
        """Slim's `end_points` dict for `inputs`, keyed as in slim."""
        inputs = tf.convert_to_tensor(inputs)
        _, end_points = self._run(inputs, training)
        return dict(end_points)

    def forward_function(self, input_shape=None, training: bool = False,
                         jit_compile: bool = False):
        """The net's call compiled once: `images -> outputs` for float32 batches of
        `input_shape` (H, W, C; default: the shape the model was built for), any batch
        size. Like the graph a slim user built once and ran with `Session.run`, it is
        traced once into a concrete `tf.function` (`.concrete_function`, e.g. for
        export) and calling it skips `tf.function`'s per-call signature matching;
        images of another size are a ValueError, never a retrace."""
        if input_shape is None:
            input_shape = getattr(self, "_built_input_shape", None)
            if input_shape is None:
                raise ValueError(f"{self.slim_name} ({self.name}) was not built with "
                                 f"build_for or create_model: pass input_shape=(H, W, C)")
        input_shape = tuple(input_shape)
        self.check_input_shape((None, *input_shape))
        spec = tf.TensorSpec([None, *input_shape], tf.float32, name="images")
        concrete = tf.function(lambda images: self(images, training=training),
                               jit_compile=jit_compile).get_concrete_function(spec)

        def forward(images):
            images = tf.convert_to_tensor(images)
            if images.dtype != tf.float32:  # uint8 or float64 images, as model(x) takes them
                images = tf.cast(images, tf.float32)
            if images.shape.rank != len(input_shape) + 1 or \
                    tuple(images.shape[1:]) != input_shape:
                size = ", ".join(map(str, input_shape))
                raise ValueError(f"{self.slim_name} ({self.name}): forward_function was "
                                 f"compiled for images of shape (batch, {size}), got "
                                 f"{tuple(images.shape)}; make another with "
                                 f"forward_function(input_shape=...)")
            return concrete(images)

        forward.concrete_function = concrete
        return forward

    def build_for(self, input_shape) -> "SlimModel":
        """Creates the weights for inputs of `input_shape` (H, W, C) without running
        the net (a symbolic call), and returns the model."""
        for variable, initializer in self._build_deferred(input_shape):
            variable.assign(initializer(variable.shape, variable.dtype))
        return self

    def _build_deferred(self, input_shape) -> list:
        """Builds with the kslim layers' weights as zeros; returns the `(variable,
        initializer)` pairs still to initialize. Reading a not-yet-initialized Keras
        variable during the symbolic build would add its whole initializer to the
        scratch graph each time; zeros keep the build cheap."""
        input_shape = tuple(input_shape)
        self.check_input_shape((None, *input_shape))
        with deferred_initializers() as pending:
            self(keras.Input(shape=input_shape))
        self._built_channels = input_shape[-1]
        self._built_input_shape = input_shape
        return pending

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Keras loss, plus slim's 0.4-weighted auxiliary-head loss when training."""
        if isinstance(y_pred, dict) and "aux_logits" in y_pred:
            loss = super().compute_loss(x, y, y_pred["logits"], sample_weight, training)
            return loss + self.aux_loss_weight * self._aux_loss(y, y_pred["aux_logits"],
                                                                sample_weight)
        return super().compute_loss(x, y, y_pred, sample_weight, training)

    def _aux_loss(self, y, aux_logits, sample_weight):
        """The compiled loss applied to the auxiliary head (no metric tracking)."""
        loss_fn = keras.losses.get(self.loss) if isinstance(self.loss, str) else self.loss
        if loss_fn is None:
            return tf.constant(0.0)
        if isinstance(loss_fn, keras.losses.Loss):
            return loss_fn(y, aux_logits, sample_weight)
        return tf.reduce_mean(loss_fn(y, aux_logits))

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if isinstance(y_pred, dict) and "logits" in y_pred:
            y_pred = y_pred["logits"]
        return super().compute_metrics(x, y, y_pred, sample_weight)

    def get_config(self):
        return self._base_config()
