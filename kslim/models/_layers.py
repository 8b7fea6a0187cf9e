"""Slim-style Keras layers that own slim's variable names.

A Keras 3 weight's path is the stack of layer names it was built under plus its own
name, so a layer named like a slim scope whose weights are named like slim's leaves
(`weights`, `biases`, `depthwise_weights`, `pointwise_weights`,
`BatchNorm/{beta,gamma,moving_mean,moving_variance}`) gives every weight its slim
checkpoint name with no mapping table.

Mirrors tf_slim's `layers/layers.py` (`conv2d`, `separable_conv2d`,
`fully_connected`, `batch_norm`, `repeat`) with the arguments the slim nets pass
through their `arg_scope`s made explicit.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Sequence

import keras
import tensorflow as tf

__all__ = [
    "BatchNorm",
    "Conv2d",
    "Conv3d",
    "FullyConnected",
    "SeparableConv2d",
    "Stack",
    "activation",
    "conv2d_same_padding",
    "deferred_initializers",
    "l2_regularizer",
]

# slim.batch_norm's defaults (tf_slim layers.batch_norm: decay=0.999, epsilon=0.001).
BATCH_NORM_DEFAULTS = {"decay": 0.999, "epsilon": 0.001, "center": True, "scale": False}


# (variable, initializer) pairs of weights created while `deferred_initializers` is active.
_PENDING: list | None = None


@contextlib.contextmanager
def deferred_initializers():
    """Creates the weights of kslim layers unwritten and yields the list of
    `(variable, initializer)` pairs, for a caller about to overwrite them from a
    checkpoint: drawing VGG's 138M random initial values costs more than reading the
    checkpoint. The caller initializes whatever the checkpoint did not provide."""
    global _PENDING
    outer, _PENDING = _PENDING, []
    try:
        yield _PENDING
    finally:
        _PENDING = outer


def _unset(shape, dtype=None):
    """The deferred weights' placeholder value: memory allocated but not written (the
    caller overwrites every deferred weight before the model is returned)."""
    return tf.raw_ops.Empty(shape=shape, dtype=dtype or "float32", init=False)


def own_initializer(initializer):
    """A layer's own copy of `initializer`. Keras 3 fixes an unseeded initializer's
    seed when the instance is made, so one instance shared by several layers (a
    family's defaults, slim's arg_scope) would give every same-shaped layer the same
    initial values; a copy made from its config draws a seed of its own (a seeded
    one keeps its seed)."""
    initializer = keras.initializers.get(initializer)
    return initializer.__class__.from_config(initializer.get_config())


def l2_regularizer(weight_decay: float | None):
    """slim.l2_regularizer(wd): `wd * sum(w ** 2) / 2` per tensor, or None for 0."""
    if not weight_decay:
        return None
    return keras.regularizers.L2(0.5 * float(weight_decay))


_ACTIVATIONS: dict[str, Callable] = {
    "relu": tf.nn.relu,
    "relu6": tf.nn.relu6,
    "tanh": tf.nn.tanh,
    "sigmoid": tf.nn.sigmoid,
    "swish": tf.nn.swish,
    "hard_swish": lambda x: x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0),
}


def activation(name: str | None) -> Callable | None:
    """The activation function for a slim `activation_fn`, given by name (None = linear)."""
    if name is None:
        return None
    try:
        return _ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; expected one of {sorted(_ACTIVATIONS)} or None"
        ) from None


def conv2d_same_padding(kernel_size: int, rate: int = 1) -> list[list[int]]:
    """The explicit padding of slim's `resnet_utils.conv2d_same` for a strided conv.

    TF's 'SAME' padding of a stride-2 conv depends on the input size (it pads more
    at the bottom/right); slim pads `(k_eff - 1) // 2` before and the rest after,
    independent of the input, then runs a VALID conv.
    """
    effective = kernel_size + (kernel_size - 1) * (rate - 1)
    total = effective - 1
    begin = total // 2
    return [[0, 0], [begin, total - begin], [begin, total - begin], [0, 0]]


def pair(value: int | Sequence[int]) -> tuple[int, int]:
    """`(value, value)` for an int; a kernel size or stride pair as a tuple."""
    if isinstance(value, int):
        return (value, value)
    value = tuple(value)
    if len(value) != 2:
        raise ValueError(f"expected an int or a pair, got {value!r}")
    return value  # type: ignore[return-value]


def triple(value: int | Sequence[int]) -> tuple[int, int, int]:
    """`(value,) * 3` for an int; a 3-D (depth, height, width) kernel or stride as a tuple."""
    if isinstance(value, int):
        return (value, value, value)
    value = tuple(int(v) for v in value)
    if len(value) != 3:
        raise ValueError(f"expected an int or a triple, got {value!r}")
    return value  # type: ignore[return-value]


def out_size(size: int, kernel: int, stride: int, padding: str) -> int:
    """TF's output size of a conv or pool along one axis; 0 where VALID does not fit."""
    if padding == "SAME":
        return -(-size // stride)
    return (size - kernel) // stride + 1 if size >= kernel else 0


class BatchNorm(keras.layers.BatchNormalization):
    """slim.batch_norm as a Keras layer named `BatchNorm`.

    Runs TensorFlow's fused batch norm, as slim does for NHWC inputs, so training
    mode normalizes with the batch statistics and updates the moving averages with
    the unbiased batch variance exactly as slim (`moving -= (moving - batch) *
    (1 - decay)`). Slim's `decay` is Keras's `momentum`. With `scale=False` (slim's
    default, used by the Inception nets) there is no `gamma` weight.
    """

    def __init__(self, decay: float = 0.999, epsilon: float = 0.001, center: bool = True,
                 scale: bool = False, name: str = "BatchNorm", **kwargs):
        kwargs.pop("momentum", None)
        super().__init__(momentum=decay, epsilon=epsilon, center=center, scale=scale,
                         name=name, **kwargs)

    def call(self, inputs, training=None, mask=None):
        if len(inputs.shape) != 4:
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        gamma = self.gamma if self.scale else tf.ones([channels], tf.float32)
        beta = self.beta if self.center else tf.zeros([channels], tf.float32)
        if training and self.trainable:
            outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, epsilon=self.epsilon, is_training=True)
            rate = 1.0 - self.momentum
            self.moving_mean.assign_sub((self.moving_mean - mean) * rate)
            self.moving_variance.assign_sub((self.moving_variance - variance) * rate)
            return outputs
        outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
            inputs, gamma, beta, mean=self.moving_mean, variance=self.moving_variance,
            epsilon=self.epsilon, is_training=False)
        return outputs

    def get_config(self):
        config = super().get_config()
        config["decay"] = config.pop("momentum")
        return config


def _normalizer(batch_norm: dict | None) -> BatchNorm | None:
    if batch_norm is None:
        return None
    params = {**BATCH_NORM_DEFAULTS, **batch_norm}
    return BatchNorm(**params)


class _SlimLayer(keras.layers.Layer):
    """Shared tail of slim's conv/fc layers: biases or BatchNorm, then activation."""

    def __init__(self, activation_fn: str | None, batch_norm: dict | None,
                 use_bias: bool | None, weight_decay: float | None,
                 kernel_initializer, bias_initializer, **kwargs):
        super().__init__(**kwargs)
        self.activation_fn = activation_fn
        self._activation = activation(activation_fn)
        self.batch_norm = batch_norm
        self.norm = _normalizer(batch_norm)
        # slim: a layer with a normalizer_fn has no biases.
        self.use_bias = (batch_norm is None) if use_bias is None else use_bias
        self.weight_decay = weight_decay
        self.kernel_initializer = own_initializer(kernel_initializer)
        self.bias_initializer = own_initializer(bias_initializer)

    def _weight(self, name: str, shape, initializer, regularizer=None):
        """`add_weight`, honouring `deferred_initializers`."""
        deferred = _PENDING is not None
        variable = self.add_weight(name=name, shape=shape, regularizer=regularizer,
                                   initializer=_unset if deferred else initializer)
        if deferred:
            _PENDING.append((variable, initializer))
        return variable

    def _add_biases(self, units: int):
        if self.use_bias:
            self.biases = self._weight("biases", (units,), self.bias_initializer)

    def _finish(self, x, training):
        if self.use_bias:
            x = tf.nn.bias_add(x, self.biases)
        if self.norm is not None:
            x = self.norm(x, training=training)
        if self._activation is not None:
            x = self._activation(x)
        return x

    def get_config(self):
        config = super().get_config()
        config.update(
            activation_fn=self.activation_fn,
            batch_norm=self.batch_norm,
            use_bias=self.use_bias,
            weight_decay=self.weight_decay,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
        )
        return config


class Conv2d(_SlimLayer):
    """slim.conv2d: `weights` [kh, kw, in, out], then `biases` or `BatchNorm`, then activation.

    Args:
        num_outputs: output channels.
        kernel_size: int or (kh, kw).
        stride: int or (sh, sw).
        padding: 'SAME' or 'VALID' (TF semantics), or 'conv2d_same' for slim's
            `resnet_utils.conv2d_same` (explicit symmetric padding when strided).
        rate: atrous (dilation) rate.
        activation_fn: activation name or None (slim's default is relu).
        batch_norm: None, or the slim batch-norm params (`decay`, `epsilon`,
            `scale`, `center`): adds a `BatchNorm` sub-layer and drops the biases.
        weight_decay: slim's L2 on `weights` (`wd * sum(w**2) / 2`).
        name: the slim scope of this layer.
    """

    def __init__(self, num_outputs: int, kernel_size, stride=1, padding: str = "SAME",
                 rate: int = 1, activation_fn: str | None = "relu",
                 batch_norm: dict | None = None, use_bias: bool | None = None,
                 weight_decay: float | None = None,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(activation_fn, batch_norm, use_bias, weight_decay,
                         kernel_initializer, bias_initializer, **kwargs)
        self.num_outputs = int(num_outputs)
        self.kernel_size = pair(kernel_size)
        self.stride = pair(stride)
        self.padding = padding.upper() if padding != "conv2d_same" else padding
        self.rate = int(rate)

    def build(self, input_shape):
        self.kernel = self._weight(
            "weights", (*self.kernel_size, input_shape[-1], self.num_outputs),
            self.kernel_initializer, l2_regularizer(self.weight_decay))
        self._add_biases(self.num_outputs)

    def call(self, x, training=None):
        padding = self.padding
        if padding == "conv2d_same":
            if self.stride == (1, 1):
                padding = "SAME"
            else:
                x = tf.pad(x, conv2d_same_padding(self.kernel_size[0], self.rate))
                padding = "VALID"
        kernel = tf.cast(self.kernel, x.dtype)
        if self._is_dense(x.shape, padding):
            # A conv whose single output position sees the whole input (VGG's fc6-fc8,
            # the 1x1 logits of most nets) is a matmul; CPU conv kernels run this shape
            # several times slower than the same matmul.
            depth = kernel.shape[0] * kernel.shape[1] * kernel.shape[2]
            y = tf.matmul(tf.reshape(x, [-1, depth]), tf.reshape(kernel, [depth, -1]))
            x = tf.reshape(y, [-1, 1, 1, self.num_outputs])
        else:
            x = tf.nn.conv2d(x, kernel, strides=self.stride, padding=padding,
                             dilations=self.rate)
        return self._finish(x, training)

    def _is_dense(self, shape, padding: str) -> bool:
        height, width = shape[1], shape[2]
        kh, kw = self.kernel_size
        if self.rate != 1 or height is None or width is None:
            return False
        covers = padding == "VALID" and (height, width) == (kh, kw)
        return covers or ((kh, kw) == (1, 1) and (height, width) == (1, 1))

    def get_config(self):
        config = super().get_config()
        config.update(num_outputs=self.num_outputs, kernel_size=self.kernel_size,
                      stride=self.stride, padding=self.padding, rate=self.rate)
        return config


class SeparableConv2d(_SlimLayer):
    """slim.separable_conv2d: `depthwise_weights` [kh, kw, in, multiplier], and with
    `num_outputs` also `pointwise_weights` [1, 1, in * multiplier, out], in one scope.

    `num_outputs=None` is slim's depthwise-only form (MobileNet's `*_depthwise`).
    `weight_decay` regularizes the pointwise weights; `regularize_depthwise` adds it
    to the depthwise weights too (slim's `regularize_depthwise`).
    """

    def __init__(self, num_outputs: int | None, kernel_size, depth_multiplier: int = 1,
                 stride=1, padding: str = "SAME", rate: int = 1,
                 activation_fn: str | None = "relu", batch_norm: dict | None = None,
                 use_bias: bool | None = None, weight_decay: float | None = None,
                 regularize_depthwise: bool = False,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(activation_fn, batch_norm, use_bias, weight_decay,
                         kernel_initializer, bias_initializer, **kwargs)
        self.num_outputs = None if num_outputs is None else int(num_outputs)
        self.kernel_size = pair(kernel_size)
        self.depth_multiplier = int(depth_multiplier)
        self.stride = pair(stride)
        self.padding = padding.upper()
        self.rate = int(rate)
        self.regularize_depthwise = regularize_depthwise

    def build(self, input_shape):
        channels = input_shape[-1]
        self.depthwise_kernel = self._weight(
            "depthwise_weights", (*self.kernel_size, channels, self.depth_multiplier),
            self.kernel_initializer,
            l2_regularizer(self.weight_decay if self.regularize_depthwise else 0))
        outputs = channels * self.depth_multiplier
        if self.num_outputs is not None:
            self.pointwise_kernel = self._weight(
                "pointwise_weights", (1, 1, outputs, self.num_outputs),
                self.kernel_initializer, l2_regularizer(self.weight_decay))
            outputs = self.num_outputs
        self._add_biases(outputs)

    def call(self, x, training=None):
        depthwise = tf.cast(self.depthwise_kernel, x.dtype)
        strides = (1, *self.stride, 1)
        if self.num_outputs is None:
            x = tf.nn.depthwise_conv2d(x, depthwise, strides=strides, padding=self.padding,
                                       dilations=(self.rate, self.rate))
        else:
            pointwise = tf.cast(self.pointwise_kernel, x.dtype)
            x = tf.nn.separable_conv2d(x, depthwise, pointwise, strides=strides,
                                       padding=self.padding,
                                       dilations=(self.rate, self.rate))
        return self._finish(x, training)

    def get_config(self):
        config = super().get_config()
        config.update(num_outputs=self.num_outputs, kernel_size=self.kernel_size,
                      depth_multiplier=self.depth_multiplier, stride=self.stride,
                      padding=self.padding, rate=self.rate,
                      regularize_depthwise=self.regularize_depthwise)
        return config


class Conv3d(_SlimLayer):
    """slim.conv3d (NDHWC): `weights` [kd, kh, kw, in, out], then `biases` or
    `BatchNorm`, then activation; the video nets' layer.

    Args:
        num_outputs: output channels.
        kernel_size: int or (kd, kh, kw).
        stride: int or (sd, sh, sw).
        padding: 'SAME' or 'VALID' (TF semantics).
        activation_fn, batch_norm, use_bias, weight_decay: as `Conv2d`
            (`use_bias=False` without batch norm is slim's `biases_initializer=None`).
        name: the slim scope of this layer.
    """

    def __init__(self, num_outputs: int, kernel_size, stride=1, padding: str = "SAME",
                 activation_fn: str | None = "relu", batch_norm: dict | None = None,
                 use_bias: bool | None = None, weight_decay: float | None = None,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(activation_fn, batch_norm, use_bias, weight_decay,
                         kernel_initializer, bias_initializer, **kwargs)
        self.num_outputs = int(num_outputs)
        self.kernel_size = triple(kernel_size)
        self.stride = triple(stride)
        self.padding = padding.upper()

    def build(self, input_shape):
        self.kernel = self._weight(
            "weights", (*self.kernel_size, input_shape[-1], self.num_outputs),
            self.kernel_initializer, l2_regularizer(self.weight_decay))
        self._add_biases(self.num_outputs)

    def call(self, x, training=None):
        x = tf.nn.conv3d(x, tf.cast(self.kernel, x.dtype), strides=(1, *self.stride, 1),
                         padding=self.padding)
        return self._finish(x, training)

    def get_config(self):
        config = super().get_config()
        config.update(num_outputs=self.num_outputs, kernel_size=self.kernel_size,
                      stride=self.stride, padding=self.padding)
        return config


class FullyConnected(_SlimLayer):
    """slim.fully_connected: `weights` [in, out], then `biases` or `BatchNorm`, activation."""

    def __init__(self, num_outputs: int, activation_fn: str | None = "relu",
                 batch_norm: dict | None = None, use_bias: bool | None = None,
                 weight_decay: float | None = None,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(activation_fn, batch_norm, use_bias, weight_decay,
                         kernel_initializer, bias_initializer, **kwargs)
        self.num_outputs = int(num_outputs)

    def build(self, input_shape):
        self.kernel = self._weight("weights", (input_shape[-1], self.num_outputs),
                                   self.kernel_initializer, l2_regularizer(self.weight_decay))
        self._add_biases(self.num_outputs)

    def call(self, x, training=None):
        x = tf.matmul(x, tf.cast(self.kernel, x.dtype))
        return self._finish(x, training)

    def get_config(self):
        config = super().get_config()
        config.update(num_outputs=self.num_outputs)
        return config


class Stack(keras.layers.Layer):
    """A named slim scope whose layers run in order (`slim.repeat`, `slim.stack`,
    an Inception branch).

    Calling it (rather than its layers one by one) is what puts its name in its
    layers' weight paths. `return_all=True` returns every layer's output, for the
    end points slim's outputs collections record (see `collect`).
    """

    def __init__(self, layers: Sequence[keras.layers.Layer], **kwargs):
        super().__init__(**kwargs)
        self.layers = list(layers)

    def call(self, x, training=None, return_all: bool = False):
        outputs = []
        for layer in self.layers:
            x = layer(x, training=training)
            outputs.append(x)
        return outputs if return_all else x

    def collect(self, x, end_points: dict, prefix: str = "", training=None):
        """Runs the stack and records `"{prefix}/{stack}/{layer}"` end points; returns
        the last output."""
        outputs = self(x, training=training, return_all=True)
        for layer, output in zip(self.layers, outputs):
            end_points[f"{prefix}/{self.name}/{layer.name}".lstrip("/")] = output
        return outputs[-1]
