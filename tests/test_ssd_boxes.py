"""SSD anchors, box coding, loss and post-processing against SSD-Tensorflow's own
outputs (tests/fixtures/ssd: anchors, encode, loss, detect; see their manifests)."""

import hashlib
import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf

import kslim
from kslim.detection import anchors as anchor_utils
from kslim.detection import losses, postprocess

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "ssd"
PARAMS = kslim.models.ssd_vgg.PARAMS


def load(case):
    manifest = json.loads((FIXTURES / case / "manifest.json").read_text())
    return manifest, dict(np.load(FIXTURES / case / "expected.npz"))


def default_anchors(net):
    p = PARAMS[net]
    return kslim.detection.ssd_anchors(p.img_shape, p.feat_shapes, p.anchor_sizes,
                                       p.anchor_ratios, p.anchor_steps, p.anchor_offset)


def flat(arrays, batch=True):
    """Per-layer [B, H, W, A, ...] arrays as the flat [B, N, ...] layout."""
    if batch:
        return np.concatenate([a.reshape(a.shape[0], -1, *a.shape[4:]) for a in arrays], 1)
    return np.concatenate([a.reshape(-1, *a.shape[3:]) for a in arrays], 0)


def layers_of(expected, prefix, feat_layers):
    return [expected[f"{prefix}/{layer}"] for layer in feat_layers]


@pytest.fixture(scope="module")
def fixtures():
    return {case: load(case) for case in ("anchors", "encode", "loss", "detect")}


# -- anchors -------------------------------------------------------------------------

@pytest.mark.parametrize("net", ["ssd_300_vgg", "ssd_512_vgg"])
def test_anchors_bit_exact(fixtures, net):
    _, expected = fixtures["anchors"]
    anchors = default_anchors(net)
    assert len(anchors) == len(PARAMS[net].feat_layers)
    for i, layer in enumerate(anchors):
        for name, value in zip("yxhw", layer):
            ref = expected[f"{net}/{i}/{name}"]
            assert value.dtype == np.float32 and value.shape == ref.shape
            np.testing.assert_array_equal(value, ref, err_msg=f"{net} layer {i} {name}")
    total = sum(anchor_utils.layer_sizes(anchors))
    assert total == {"ssd_300_vgg": 8732, "ssd_512_vgg": 24564}[net]


def test_model_anchors_other_size_and_classes():
    """SPEC s9: image size = the input size, feature shapes measured on the net,
    sizes and steps (pixels) unchanged."""
    model = kslim.models.create_model("ssd_300_vgg", num_classes=7, input_shape=(320, 320, 3))
    out = model(np.zeros((1, 320, 320, 3), np.float32))
    assert model.feature_shapes == [(40, 40, 4), (20, 20, 6), (10, 10, 6), (5, 5, 6),
                                    (3, 3, 4), (1, 1, 4)]
    p = PARAMS["ssd_300_vgg"]
    expected = kslim.detection.ssd_anchors((320, 320), [(40, 40), (20, 20), (10, 10),
                                                        (5, 5), (3, 3), (1, 1)],
                                           p.anchor_sizes, p.anchor_ratios, p.anchor_steps)
    for got, ref in zip(model.anchors(), expected):
        for a, b in zip(got, ref):
            np.testing.assert_array_equal(a, b)
    # step-based centres: layer 0 centre 0 is (0.5 * 8) / 320; sizes are 21 px / 320.
    assert model.anchors()[0][0][0, 0, 0] == np.float32(np.float32(0.5) * 8 / 320)
    assert model.anchors()[0][2][0] == np.float32(21.0 / 320)
    n = sum(h * w * a for h, w, a in model.feature_shapes)
    assert out["logits"].shape == (1, n, 7) and out["localisations"].shape == (1, n, 4)
    # The output-size rules give what the net measures, at other sizes too.
    model._measured_shapes.clear()
    rules = model.feature_shapes_for((333, 301))
    model(np.zeros((1, 333, 301, 3), np.float32))
    assert model.feature_shapes_for((333, 301)) == rules
    assert rules[0][:2] == (42, 38) and rules[-1][:2] == (2, 1)
    # A non-square input: anchors per axis.
    y, x, h, w = model.anchors((300, 400))[0]
    assert y.shape == (38, 50, 1) and h[0] == np.float32(21 / 300) and w[0] == np.float32(21 / 400)


def test_ssd_anchors_errors():
    p = PARAMS["ssd_300_vgg"]
    with pytest.raises(ValueError, match="one entry per feature layer"):
        kslim.detection.ssd_anchors((300, 300), p.feat_shapes[:3], p.anchor_sizes,
                                    p.anchor_ratios, p.anchor_steps)
    with pytest.raises(ValueError, match="has 6 anchors per location"):
        kslim.detection.ssd_anchors((300, 300), [(38, 38, 6)], p.anchor_sizes[:1],
                                    p.anchor_ratios[:1], p.anchor_steps[:1])


# -- encode / decode -----------------------------------------------------------------

def test_encode_matches_ssd_tensorflow(fixtures):
    manifest, expected = fixtures["encode"]
    layers = manifest["feat_layers"]
    anchors = default_anchors("ssd_300_vgg")
    labels, locs, scores = kslim.detection.encode(expected["gt/labels"], expected["gt/bboxes"],
                                                  anchors, num_classes=21)
    ref_labels = flat(layers_of(expected, "target_labels", layers), batch=False)
    ref_locs = flat(layers_of(expected, "target_localizations", layers), batch=False)
    ref_scores = flat(layers_of(expected, "target_scores", layers), batch=False)
    assert labels.dtype == tf.int64 and labels.shape == (8732,)
    np.testing.assert_array_equal(labels.numpy(), ref_labels)
    np.testing.assert_allclose(scores.numpy(), ref_scores, rtol=0, atol=1e-5)
    np.testing.assert_allclose(locs.numpy(), ref_locs, rtol=0, atol=1e-5)
    assert int(np.sum(scores.numpy() > 0.5)) == manifest["positives_iou_gt_0.5"]


def test_encode_in_tf_data_and_edge_cases():
    anchors = default_anchors("ssd_300_vgg")
    boxes = np.array([[0.2, 0.1, 0.7, 0.45], [0.05, 0.5, 0.95, 0.9]], np.float32)
    eager = kslim.detection.encode([3, 7], boxes, anchors, 21)

    def to_targets(labels, bboxes):
        return kslim.detection.encode(labels, bboxes, anchors, 21)

    ds = tf.data.Dataset.from_tensors((tf.constant([3, 7], tf.int64), boxes)).map(to_targets)
    (labels, locs, scores), = list(ds)
    for a, b in zip((labels, locs, scores), eager):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # An image without boxes: everything background, box (0, 0, 1, 1) encoded.
    labels, locs, scores = kslim.detection.encode(tf.zeros([0], tf.int64),
                                                  tf.zeros([0, 4]), anchors, 21)
    assert not labels.numpy().any() and not scores.numpy().any()
    _, again, _ = kslim.detection.encode([1], [[0.0, 0.0, 1.0, 1.0]], anchors, 21)
    np.testing.assert_allclose(locs.numpy(), again.numpy(), atol=1e-6)
    # A label >= num_classes is an error naming it, or ignored as the original does.
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_classes=21"):
        kslim.detection.encode([21], boxes[:1], anchors, 21)
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_classes=21"):
        list(tf.data.Dataset.from_tensors((tf.constant([25], tf.int64), boxes[:1]))
             .map(to_targets))
    labels, _, scores = kslim.detection.encode([21, 4], boxes, anchors, 21,
                                               invalid_labels="ignore")
    assert set(np.unique(labels.numpy())) == {0, 4}
    with pytest.raises(tf.errors.InvalidArgumentError, match="ymin > ymax"):
        kslim.detection.encode([1], [[0.7, 0.1, 0.2, 0.45]], anchors, 21)
    with pytest.raises(tf.errors.InvalidArgumentError, match="ground-truth boxes"):
        kslim.detection.encode([1], [[0.1, np.nan, 0.2, 0.45]], anchors, 21)
    # A zero-area box matches nothing; a box beyond the image is used as it is.
    labels, _, _ = kslim.detection.encode([3], [[0.5, 0.5, 0.5, 0.5]], anchors, 21)
    assert not labels.numpy().any()
    labels, _, scores = kslim.detection.encode([3], [[0.6, 0.6, 1.3, 1.2]], anchors, 21)
    assert (labels.numpy() == 3).any() and scores.numpy().max() > 0.5


def test_decode_inverts_encode_and_matches_fixture(fixtures):
    manifest, expected = fixtures["detect"]
    info = manifest["detect_info"]["ssd_300_vgg"]
    _, net = load("net-ssd_300_vgg-21-300")
    anchors = default_anchors("ssd_300_vgg")
    locs = [net[f"localisations/{layer}"] * np.float32(info["localisation_factors"][layer])
            for layer in info["feat_layers"]]
    decoded = kslim.detection.decode(flat(locs), anchors)
    ref = flat(layers_of(expected, "ssd_300_vgg/decoded", info["feat_layers"]))
    np.testing.assert_allclose(decoded.numpy(), ref, rtol=0, atol=1e-5)
    # decode(encode(box)) is the matched box for the anchors that matched.
    boxes = np.array([[0.2, 0.1, 0.7, 0.45], [0.55, 0.55, 0.62, 0.62]], np.float32)
    labels, t_locs, _ = kslim.detection.encode([1, 2], boxes, anchors, 21)
    back = kslim.detection.decode(t_locs, anchors).numpy()
    for label, box in zip((1, 2), boxes):
        np.testing.assert_allclose(back[labels.numpy() == label], np.broadcast_to(
            box, back[labels.numpy() == label].shape), atol=1e-5)


def test_prior_scaling_index_convention():
    """encode divides (cy, cx, h, w) by prior_scaling[0..3]; decode multiplies (cx, cy,
    w, h) by prior_scaling[0..3] (SSD-Tensorflow's convention, kept)."""
    anchors = [(np.full((1, 1, 1), 0.5, np.float32), np.full((1, 1, 1), 0.5, np.float32),
                np.array([0.5], np.float32), np.array([0.5], np.float32))]
    box = np.array([[0.3, 0.2, 0.8, 0.9]], np.float32)  # cy .55 cx .55 h .5 w .7
    scaling = (0.1, 0.2, 0.3, 0.4)
    _, locs, _ = kslim.detection.encode([1], box, anchors, 2, prior_scaling=scaling)
    cx, cy, w, h = locs.numpy()[0]
    np.testing.assert_allclose([cx, cy, w, h], [0.05 / 0.5 / 0.2, 0.05 / 0.5 / 0.1,
                                                np.log(0.7 / 0.5) / 0.4, 0.0], atol=1e-6)
    ymin, xmin, ymax, xmax = kslim.detection.decode(locs, anchors, scaling).numpy()[0]
    np.testing.assert_allclose((xmin + xmax) / 2, 0.5 + cx * 0.5 * 0.1, atol=1e-6)
    np.testing.assert_allclose(xmax - xmin, 0.5 * np.exp(w * 0.3), atol=1e-6)


# -- loss ----------------------------------------------------------------------------

def loss_inputs(expected, manifest, net, variant):
    info = manifest["loss_info"][net]
    _, outputs = load(info["net_case"])
    layers = info["feat_layers"]
    factors = info["scaled_factors"]
    scale = (lambda a, layer: a * np.float32(factors[layer])) if variant == "scaled" else (
        lambda a, layer: a)
    logits = flat([scale(outputs[f"logits/{layer}"], layer) for layer in layers])
    locs = flat([scale(outputs[f"localisations/{layer}"], layer) for layer in layers])
    targets = [flat(layers_of(expected, f"{net}/targets/{kind}", layers))
               for kind in ("gclasses", "glocalisations", "gscores")]
    sizes = [int(np.prod(outputs[f"logits/{layer}"].shape[1:4])) for layer in layers]
    return logits, locs, targets, sizes


def original_index(mask, sizes):
    """Flat indices of a [B, N] mask in SSD-300's loss flattening (layer, batch, ...)."""
    parts = np.split(mask, np.cumsum(sizes)[:-1], axis=1)
    return np.flatnonzero(np.concatenate([p.reshape(-1) for p in parts]))


@pytest.mark.parametrize("variant", ["raw", "scaled"])
def test_loss_300_matches(fixtures, variant):
    manifest, expected = fixtures["loss"]
    logits, locs, (labels, t_locs, scores), sizes = loss_inputs(expected, manifest,
                                                                "ssd_300_vgg", variant)
    result = kslim.detection.ssd_losses(logits, locs, labels, t_locs, scores,
                                        return_mining=True)
    prefix = f"ssd_300_vgg/{variant}"
    for term in losses.TERMS:
        ref = expected[f"{prefix}/ssd_losses/{term}/value"]
        np.testing.assert_allclose(result[term].numpy(), ref, rtol=1e-5, atol=1e-6,
                                   err_msg=term)
    for key in ("n_positives", "n_neg", "kept_negatives"):
        assert int(result[key]) == int(expected[f"{prefix}/mining/{key}"]), key
    # A probability (ulps apart between softmax implementations); the counts and the
    # kept set are exact.
    np.testing.assert_allclose(result["max_hard_pred"].numpy(),
                               expected[f"{prefix}/mining/max_hard_pred"], rtol=1e-6)
    np.testing.assert_array_equal(original_index(result["negative_mask"].numpy(), sizes),
                                  expected[f"{prefix}/mining/kept_negative_index"])


@pytest.mark.parametrize("variant", ["raw", "scaled"])
def test_loss_512_matches(fixtures, variant):
    manifest, expected = fixtures["loss"]
    logits, locs, (labels, t_locs, scores), sizes = loss_inputs(expected, manifest,
                                                                "ssd_512_vgg", variant)
    result = kslim.detection.ssd_losses(logits, locs, labels, t_locs, scores,
                                        variant="ssd_512_vgg", layer_sizes=sizes,
                                        return_mining=True)
    prefix = f"ssd_512_vgg/{variant}"
    for term in losses.TERMS:
        ref = expected[f"{prefix}/ssd_losses/total/{term}"]
        np.testing.assert_allclose(result[term].numpy(), ref, rtol=1e-5, atol=1e-6,
                                   err_msg=term)
    for i, layer in enumerate(result["layers"]):
        for term in losses.TERMS:
            ref = expected[f"{prefix}/ssd_losses/block_{i}/{term}/weighted_loss/value"]
            np.testing.assert_allclose(layer[term].numpy(), ref, rtol=1e-5, atol=1e-6,
                                       err_msg=f"block_{i} {term}")
        for key in ("n_positives", "n_neg", "kept_negatives"):
            assert int(layer[key]) == int(expected[f"{prefix}/mining/block_{i}/{key}"]), (
                f"block_{i} {key}")
        np.testing.assert_allclose(layer["max_hard_pred"].numpy(), expected[
            f"{prefix}/mining/block_{i}/max_hard_pred"], rtol=1e-6)
        np.testing.assert_array_equal(
            np.flatnonzero(layer["negative_mask"].numpy().reshape(-1)),
            expected[f"{prefix}/mining/block_{i}/kept_negative_index"])


def test_loss_options_and_errors(fixtures):
    manifest, expected = fixtures["loss"]
    logits, locs, (labels, t_locs, scores), sizes = loss_inputs(expected, manifest,
                                                                "ssd_300_vgg", "scaled")
    base = kslim.detection.ssd_losses(logits, locs, labels, t_locs, scores,
                                      return_mining=True)
    paper = kslim.detection.ssd_losses(logits, locs, labels, t_locs, scores,
                                       normalization="positives")
    n_pos = float(base["n_positives"])
    for term in losses.TERMS:
        np.testing.assert_allclose(paper[term].numpy(), base[term].numpy() * 2 / n_pos,
                                   rtol=1e-6)
    doubled = kslim.detection.ssd_losses(logits, locs, labels, t_locs, scores, alpha=2.0)
    np.testing.assert_allclose(doubled["localization"], 2 * base["localization"], rtol=1e-6)
    # No positive and no negative anchor: k = 0 keeps no negative (the original fails).
    none = kslim.detection.ssd_losses(logits[:, :4], locs[:, :4], labels[:, :4],
                                      t_locs[:, :4], np.ones_like(scores[:, :4]) * -1,
                                      return_mining=True)
    assert int(none["kept_negatives"]) == 0 and float(none["cross_entropy_neg"]) == 0.0
    with pytest.raises(ValueError, match="layer_sizes"):
        kslim.detection.ssd_losses(logits, locs, labels, t_locs, scores,
                                   variant="ssd_512_vgg")
    with pytest.raises(ValueError, match="variant"):
        kslim.detection.ssd_losses(logits, locs, labels, t_locs, scores, variant="ssd")


# -- post-processing -----------------------------------------------------------------

def recipe_predictions(info, shape_of):
    layers = info["feat_layers"]
    out = []
    for layer in layers:
        rng = np.random.default_rng(info["prediction_seeds"][layer])
        z = rng.uniform(-1.0, 1.0, shape_of(layer)).astype(np.float32).astype(np.float64) * 4.0
        e = np.exp(z - z.max(-1, keepdims=True))
        p = (e / e.sum(-1, keepdims=True)).astype(np.float32)
        assert hashlib.sha256(p.tobytes()).hexdigest() == info["prediction_sha256"][layer]
        out.append(p)
    return out


@pytest.mark.parametrize("net", ["ssd_300_vgg", "ssd_512_vgg"])
def test_detected_bboxes_match(fixtures, net):
    manifest, expected = fixtures["detect"]
    info = manifest["detect_info"][net]
    params = manifest["detect_params"]
    _, outputs = load(info["net_case"])
    layers = info["feat_layers"]
    predictions = flat(recipe_predictions(
        info, lambda layer: outputs[f"logits/{layer}"].shape))
    locs = flat([outputs[f"localisations/{layer}"] * np.float32(
        info["localisation_factors"][layer]) for layer in layers])
    boxes = kslim.detection.decode(locs, default_anchors(net))
    classes = list(expected[f"{net}/classes"])

    def check(result, scores_key, boxes_key):
        assert sorted(result) == classes
        scores = np.stack([result[c][0].numpy() for c in classes])
        bboxes = np.stack([result[c][1].numpy() for c in classes])
        np.testing.assert_allclose(scores, expected[scores_key], rtol=0, atol=1e-7)
        np.testing.assert_allclose(bboxes, expected[boxes_key], rtol=0, atol=1e-5)

    sorted_only = kslim.detection.detected_bboxes(predictions, boxes, sorted_only=True,
                                                  **params)
    check(sorted_only, f"{net}/sorted_scores", f"{net}/sorted_bboxes")
    run = tf.function(lambda p, b: kslim.detection.detected_bboxes(p, b, **params))
    check(run(predictions, boxes), f"{net}/scores", f"{net}/bboxes")
    if info["clipped_variant"]:
        clipped = kslim.detection.detected_bboxes(predictions, boxes,
                                                  clipping_bbox=[0.0, 0.0, 1.0, 1.0],
                                                  **params)
        check(clipped, f"{net}/clipped/scores", f"{net}/clipped/bboxes")


def test_bboxes_clip_and_resize():
    boxes = tf.constant([[-0.1, 0.2, 0.5, 1.3], [0.4, 1.2, 0.9, 1.5]])
    clipped = postprocess.bboxes_clip([0.0, 0.0, 1.0, 1.0], boxes).numpy()
    np.testing.assert_allclose(clipped, [[0.0, 0.2, 0.5, 1.0], [0.4, 1.0, 0.9, 1.0]])
    # bbox_img of a letterboxed image: boxes on the net input -> relative to the image.
    bbox_img = [0.25, 0.0, 0.75, 1.0]
    resized = kslim.detection.bboxes_resize(bbox_img, [[0.25, 0.5, 0.5, 1.0]]).numpy()
    np.testing.assert_allclose(resized, [[0.0, 0.5, 0.5, 1.0]])
    per_image = kslim.detection.bboxes_resize(tf.constant([bbox_img, [0, 0, 1, 1]]),
                                              tf.constant([[[0.25, 0.5, 0.5, 1.0]]] * 2))
    np.testing.assert_allclose(per_image.numpy()[:, 0], [[0.0, 0.5, 0.5, 1.0],
                                                         [0.25, 0.5, 0.5, 1.0]])
