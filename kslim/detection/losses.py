"""SSD's training loss, as SSD-Tensorflow's `ssd_losses` (`nets/ssd_vgg_300.py` for
SSD-300, the older per-layer one in `nets/ssd_vgg_512.py` for SSD-512).

Inputs are the flat tensors of the model outputs and `encode` targets, `[B, N, ...]`
with anchors ordered layer, y, x, anchor. Three terms, each a scalar:
`cross_entropy_pos` (softmax cross-entropy of the matched anchors, IoU >
`match_threshold`), `cross_entropy_neg` (background cross-entropy of the mined hard
negatives) and `localization` (smooth L1 of the box offsets of the matched anchors,
times `alpha`).

Hard negative mining (both variants): among the non-matched anchors, rank by the
predicted background probability, lowest first, and take those strictly below the
k-th lowest (so at most k - 1 of them; SSD-Tensorflow issues #81, #176):
- "ssd_300_vgg": one ranking over the whole batch and all layers,
  `k = min(int(negative_ratio * n_pos) + B, n_negatives)`; each term is a sum divided
  by the batch size B (the paper divides by the number of positives instead:
  `normalization="positives"`).
- "ssd_512_vgg": per layer, `k = min(max(int(negative_ratio * n_pos), size // 8, 4 * B),
  1 + n_negatives)` with size = B * H * W * A; each term is the mean over its nonzero
  weights (`tf.losses.compute_weighted_loss`), summed over the layers.
Where k is 0 (no positive and no negative anchor) no negative is kept (the original
fails there).
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

__all__ = ["abs_smooth", "ssd_losses", "VARIANTS", "NORMALIZATIONS"]

VARIANTS = ("ssd_300_vgg", "ssd_512_vgg")
NORMALIZATIONS = ("batch", "positives")
TERMS = ("cross_entropy_pos", "cross_entropy_neg", "localization")


def abs_smooth(x):
    """Smooth L1 as SSD-Tensorflow's `custom_layers.abs_smooth`: 0.5 x^2 for |x| < 1,
    |x| - 0.5 otherwise."""
    absx = tf.abs(x)
    return 0.5 * ((absx - 1.0) * tf.minimum(absx, 1.0) + absx)


def _mine(nvalues, nmask, n_neg):
    """The kept-negative mask: values strictly below the n_neg-th lowest value.
    Returns (mask, max_hard_pred); no negative when n_neg is 0."""
    flat = tf.reshape(nvalues, [-1])
    n_neg = tf.minimum(n_neg, tf.size(flat))
    values, _ = tf.math.top_k(-flat, k=n_neg)
    # n_neg = 0 reads the appended +inf: max_hard_pred = -inf keeps no negative.
    last = tf.concat([values, [float("inf")]], 0)[tf.maximum(n_neg - 1, 0)]
    max_hard_pred = -last
    return nmask & (nvalues < max_hard_pred), max_hard_pred


def _masks(logits, scores, match_threshold):
    pmask = scores > match_threshold
    # `scores > -0.5` is always true (the original's "ignored anchor" marker is never
    # written by its encoder) and is kept for fidelity.
    nmask = tf.logical_not(pmask) & (scores > -0.5)
    background = tf.nn.softmax(logits)[..., 0]
    nvalues = tf.where(nmask, background, 1.0)
    return pmask, nmask, nvalues


def _cross_entropies(logits, labels):
    pos = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    neg = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.zeros_like(labels), logits=logits)
    return pos, neg


def ssd_losses(logits, localisations, t_labels, t_locs, t_scores,
               match_threshold: float = 0.5, negative_ratio: float = 3.0,
               alpha: float = 1.0, variant: str = "ssd_300_vgg",
               layer_sizes: Sequence[int] | None = None,
               normalization: str = "batch", return_mining: bool = False) -> dict:
    """SSD-Tensorflow's SSD loss terms.

    Args:
        logits: `[B, N, num_classes]` class logits (model output "logits").
        localisations: `[B, N, 4]` box offsets (model output "localisations").
        t_labels, t_locs, t_scores: `[B, N]`, `[B, N, 4]`, `[B, N]` targets of
            `encode`, stacked over the batch.
        match_threshold: IoU above which an anchor is a positive.
        negative_ratio: negatives per positive in the hard negative mining.
        alpha: weight of the localization term.
        variant: "ssd_300_vgg" (batch-global mining, sums / B) or "ssd_512_vgg"
            (per-layer mining and means; needs `layer_sizes`).
        layer_sizes: anchors per layer (`H * W * A` each, `anchors.layer_sizes`), for
            the SSD-512 variant.
        normalization: "batch" (SSD-Tensorflow, default) or "positives" (the paper's
            division of every term by the number of positives, at least 1; SSD-300
            variant only).
        return_mining: also return the mining details: `n_positives`, `n_neg`,
            `max_hard_pred`, `kept_negatives`, `negative_mask` ([B, N] bool) and, for
            the SSD-512 variant, the same per layer under `layers` (a list of dicts
            that also hold each layer's three terms).

    Returns:
        `{"cross_entropy_pos", "cross_entropy_neg", "localization"}` float32 scalars
        (their sum plus regularization is the training loss).
    """
    if variant not in VARIANTS:
        raise ValueError(f"ssd_losses: variant must be one of {VARIANTS}, got {variant!r}")
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"ssd_losses: normalization must be one of {NORMALIZATIONS}, got "
                         f"{normalization!r}")
    with tf.name_scope("ssd_losses"):
        logits = tf.cast(logits, tf.float32)
        localisations = tf.cast(localisations, tf.float32)
        t_labels = tf.cast(t_labels, tf.int32)
        t_locs = tf.cast(t_locs, tf.float32)
        t_scores = tf.cast(t_scores, tf.float32)
        if variant == "ssd_300_vgg":
            return _losses_300(logits, localisations, t_labels, t_locs, t_scores,
                               match_threshold, negative_ratio, alpha, normalization,
                               return_mining)
        if normalization != "batch":
            raise ValueError("ssd_losses: the ssd_512_vgg variant normalizes each layer by "
                             "its own counts; normalization='positives' is for the "
                             "ssd_300_vgg variant")
        if layer_sizes is None:
            raise ValueError("ssd_losses: variant='ssd_512_vgg' needs layer_sizes (anchors "
                             "per layer, H*W*A each: kslim.detection.anchors.layer_sizes("
                             "model.anchors()))")
        return _losses_512(logits, localisations, t_labels, t_locs, t_scores,
                           match_threshold, negative_ratio, alpha, list(layer_sizes),
                           return_mining)


def _losses_300(logits, localisations, t_labels, t_locs, t_scores, match_threshold,
                negative_ratio, alpha, normalization, return_mining):
    batch = tf.shape(logits)[0]
    pmask, nmask, nvalues = _masks(logits, t_scores, match_threshold)
    fpmask = tf.cast(pmask, tf.float32)
    n_positives = tf.reduce_sum(fpmask)
    n_neg = tf.cast(negative_ratio * n_positives, tf.int32) + batch
    n_neg = tf.minimum(n_neg, tf.reduce_sum(tf.cast(nmask, tf.int32)))
    nmask, max_hard_pred = _mine(nvalues, nmask, n_neg)
    fnmask = tf.cast(nmask, tf.float32)
    pos, neg = _cross_entropies(logits, t_labels)
    loc = abs_smooth(localisations - t_locs) * (alpha * fpmask)[..., None]
    if normalization == "positives":
        divisor = tf.maximum(n_positives, 1.0)
    else:
        divisor = tf.cast(batch, tf.float32)
    result = {
        "cross_entropy_pos": tf.reduce_sum(pos * fpmask) / divisor,
        "cross_entropy_neg": tf.reduce_sum(neg * fnmask) / divisor,
        "localization": tf.reduce_sum(loc) / divisor,
    }
    if return_mining:
        result.update(n_positives=tf.cast(n_positives, tf.int64),
                      n_neg=tf.cast(n_neg, tf.int64), max_hard_pred=max_hard_pred,
                      kept_negatives=tf.reduce_sum(tf.cast(nmask, tf.int64)),
                      negative_mask=nmask)
    return result


def _weighted_mean(loss, weights):
    """tf.compat.v1.losses.compute_weighted_loss's SUM_BY_NONZERO_WEIGHTS."""
    weights = tf.broadcast_to(weights, tf.shape(loss))
    present = tf.reduce_sum(tf.cast(tf.not_equal(weights, 0.0), tf.float32))
    return tf.math.divide_no_nan(tf.reduce_sum(loss * weights), present)


def _losses_512(logits, localisations, t_labels, t_locs, t_scores, match_threshold,
                negative_ratio, alpha, layer_sizes, return_mining):
    total = logits.shape[1]
    if total is not None and sum(layer_sizes) != total:
        raise ValueError(f"ssd_losses: layer_sizes {layer_sizes} sum to {sum(layer_sizes)} "
                         f"anchors but the logits have {total}")
    batch = tf.shape(logits)[0]
    split = lambda t: tf.split(t, layer_sizes, axis=1)  # noqa: E731
    layers = []
    masks = []
    for i, (lg, lc, tl, tc, ts) in enumerate(zip(split(logits), split(localisations),
                                                  split(t_labels), split(t_locs),
                                                  split(t_scores))):
        with tf.name_scope(f"block_{i}"):
            pmask, nmask, nvalues = _masks(lg, ts, match_threshold)
            fpmask = tf.cast(pmask, tf.float32)
            n_positives = tf.reduce_sum(fpmask)
            n_neg = tf.cast(negative_ratio * n_positives, tf.int32)
            n_neg = tf.maximum(n_neg, tf.size(nvalues) // 8)
            n_neg = tf.maximum(n_neg, batch * 4)
            n_neg = tf.minimum(n_neg, 1 + tf.reduce_sum(tf.cast(nmask, tf.int32)))
            nmask, max_hard_pred = _mine(nvalues, nmask, n_neg)
            pos, neg = _cross_entropies(lg, tl)
            layer = {
                "cross_entropy_pos": _weighted_mean(pos, fpmask),
                "cross_entropy_neg": _weighted_mean(neg, tf.cast(nmask, tf.float32)),
                "localization": _weighted_mean(abs_smooth(lc - tc),
                                               (alpha * fpmask)[..., None]),
                "n_positives": tf.cast(n_positives, tf.int64),
                "n_neg": tf.cast(n_neg, tf.int64), "max_hard_pred": max_hard_pred,
                "kept_negatives": tf.reduce_sum(tf.cast(nmask, tf.int64)),
                "negative_mask": nmask,
            }
            layers.append(layer)
            masks.append(nmask)
    result = {term: tf.add_n([layer[term] for layer in layers]) for term in TERMS}
    if return_mining:
        result["layers"] = layers
        result["negative_mask"] = tf.concat(masks, axis=1)
    return result
