"""slim's classification loss: softmax cross-entropy with label smoothing.

`train_image_classifier.py` trains on `slim.losses.softmax_cross_entropy(logits,
one_hot_labels, label_smoothing=FLAGS.label_smoothing, weights=1.0)`, plus the same loss
on the `AuxLogits` end point with weight 0.4 for nets with an auxiliary head, plus the
regularization (weight decay) losses. In Keras:

- `SoftmaxCrossEntropy(label_smoothing)` is the first term, taking the integer labels
  the input pipeline yields (or one-hot rows) and smoothing as TF1's
  `softmax_cross_entropy`: `onehot * (1 - s) + s / num_classes`; the batch mean, as
  TF1's default `SUM_BY_NONZERO_WEIGHTS` reduction with unit weights.
- `SlimModel.compute_loss` adds `0.4 x` the same loss on the aux logits when the model
  returns `{"logits", "aux_logits"}` in training (Inception, NASNet).
- Keras adds `model.losses`, the nets' `weight_decay` L2 terms (slim's
  `l2_regularizer`: `wd * sum(w^2) / 2`), to the total, as `get_total_loss` did.
"""

from __future__ import annotations

import keras
import tensorflow as tf

__all__ = ["SoftmaxCrossEntropy", "softmax_cross_entropy"]


def softmax_cross_entropy(labels, logits, label_smoothing: float = 0.0) -> tf.Tensor:
    """Per-example softmax cross-entropy of integer (or one-hot) labels, with slim's
    label smoothing. Computed in float32 whatever the logits' dtype."""
    logits = tf.cast(logits, tf.float32)
    num_classes = logits.shape[-1]
    labels = tf.convert_to_tensor(labels)
    one_hot_given = (labels.shape.rank == logits.shape.rank and labels.shape[-1] == num_classes
                     and num_classes != 1)
    if one_hot_given:
        onehot = tf.cast(labels, tf.float32)
    else:
        if labels.shape.rank == logits.shape.rank:
            labels = tf.squeeze(labels, -1)
        onehot = tf.one_hot(tf.cast(labels, tf.int32), num_classes or tf.shape(logits)[-1],
                            dtype=tf.float32)
    if label_smoothing:
        onehot = onehot * (1.0 - label_smoothing) + label_smoothing / tf.cast(
            tf.shape(logits)[-1], tf.float32)
    return tf.nn.softmax_cross_entropy_with_logits(labels=tf.stop_gradient(onehot),
                                                   logits=logits)


@keras.saving.register_keras_serializable(package="kslim")
class SoftmaxCrossEntropy(keras.losses.Loss):
    """slim's `softmax_cross_entropy` as a Keras loss, for integer or one-hot labels.

    Args:
        label_smoothing: slim's `--label_smoothing` (0 = none).
        reduction: Keras reduction (default: the batch mean, as slim).
        name: loss name.

    Example:
        >>> model.compile(optimizer, loss=SoftmaxCrossEntropy(label_smoothing=0.1),
        ...               metrics=["sparse_categorical_accuracy"])
    """

    def __init__(self, label_smoothing: float = 0.0, reduction="sum_over_batch_size",
                 name: str = "softmax_cross_entropy"):
        super().__init__(name=name, reduction=reduction)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        return softmax_cross_entropy(y_true, y_pred, self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}
