"""VOC mAP: SSD-Tensorflow's tf_extended matching and APs (fixtures: flags and counts exact,
precision/recall/AP to 1e-12), the devkit rule for difficult objects, and bad input."""

import os

import numpy as np
import pytest

from kslim.detection import metrics as M

_FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "ssd", "metrics", "expected.npz")


@pytest.fixture(scope="module")
def ref():
    with np.load(_FIXTURE) as data:
        return dict(data)


def _detections(ref, images):
    return {int(c): (ref[f"det/{c}/scores"][images], ref[f"det/{c}/bboxes"][images]) for c in ref["classes"]}


def test_matching_equals_tf_extended(ref):
    for c in ref["classes"]:
        for i in range(len(ref["gt/labels"])):
            n, tp, fp = M.bboxes_matching(
                int(c), ref[f"det/{c}/scores"][i], ref[f"det/{c}/bboxes"][i],
                ref["gt/labels"][i], ref["gt/bboxes"][i], ref["gt/difficults"][i],
            )  # fmt: skip
            assert n == ref[f"match/{c}/n_gbboxes"][i] and n.dtype == np.int64
            np.testing.assert_array_equal(tp, ref[f"match/{c}/tp"][i])
            np.testing.assert_array_equal(fp, ref[f"match/{c}/fp"][i])


@pytest.mark.parametrize("batches", [[1, 1, 1], [3], [2, 1]])
def test_streamed_metric_equals_eval_ssd_network(ref, batches):
    metric = M.VOCMetric(4)
    start = 0
    for size in batches:  # the update ops run once per batch
        images = slice(start, start + size)
        metric.update(_detections(ref, images), ref["gt/labels"][images], ref["gt/bboxes"][images],
                      ref["gt/difficults"][images])  # fmt: skip
        start += size
    assert metric.classes == [1, 2, 3] and metric.num_images == 3
    result = metric.result()
    for c in ref["classes"]:
        stream = metric.stream(c)
        for key, value in stream.items():
            want = ref[f"stream/{c}/{key}"]
            assert value.dtype == want.dtype, key
            np.testing.assert_array_equal(value, want)
        precision, recall = metric.precision_recall(c)
        np.testing.assert_allclose(precision, ref[f"precision/{c}"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(recall, ref[f"recall/{c}"], rtol=0, atol=1e-12)
        assert abs(M.average_precision_voc07(precision, recall) - ref[f"ap07/{c}"]) < 1e-12
        assert abs(result[f"AP_VOC07/{c}"] - ref[f"ap07/{c}"]) < 1e-12
        assert abs(result[f"AP_VOC12/{c}"] - ref[f"ap12/{c}"]) < 1e-12
    assert abs(result["AP_VOC07/mAP"] - ref["map07"]) < 1e-12
    assert abs(result["AP_VOC12/mAP"] - ref["map12"]) < 1e-12
    assert sorted(result) == sorted(
        [f"AP_VOC{y}/{c}" for y in ("07", "12") for c in (1, 2, 3)] + ["AP_VOC07/mAP", "AP_VOC12/mAP"]
    )


def test_average_precision_by_hand():
    # Detections sorted: TP, FP, TP over 2 objects.
    precision, recall = M.precision_recall(2, 3, [True, False, True], [False, True, False], [0.9, 0.8, 0.7])
    np.testing.assert_allclose(precision, [1, 0.5, 2 / 3])
    np.testing.assert_allclose(recall, [0.5, 0.5, 1])
    # VOC07: recall >= 0, .., 0.5 -> precision 1 (6 points); 0.6 .. 1.0 -> 2/3 (5 points).
    assert M.average_precision_voc07(precision, recall) == pytest.approx((6 + 5 * 2 / 3) / 11, abs=1e-15)
    # VOC12: the envelope 1 up to recall 0.5, then 2/3.
    assert M.average_precision_voc12(precision, recall) == pytest.approx(0.5 + 0.5 * 2 / 3, abs=1e-15)
    # Scores are sorted first (ties keep stream order); nothing found and nothing to find give 0.
    precision, recall = M.precision_recall(1, 2, [False, True], [True, False], [0.2, 0.6])
    np.testing.assert_allclose(precision, [1, 0.5])
    assert M.average_precision_voc07([], []) == 0 == M.average_precision_voc12([], [])
    np.testing.assert_array_equal(M.precision_recall(0, 1, [False], [True], [0.5])[1], [0.0])


_GT_BOXES = np.array([[[0.0, 0.0, 0.5, 1.0], [0.6, 0.6, 0.9, 0.9], [0.0, 0.0, 0.0, 0.0]]], np.float32)


def _rule_case(rule, det_box, gt_labels, gt_difficults, score=0.9):
    metric = M.VOCMetric(3, rule=rule)
    metric.update({1: ([[score]], [[det_box]])}, [gt_labels], _GT_BOXES, [gt_difficults])
    stream = metric.stream(1)
    return stream["tp"].tolist(), stream["fp"].tolist(), int(stream["num_gbboxes"])


def test_difficult_rules_differ_where_documented():
    far = [0.95, 0.95, 1.0, 1.0]
    # No overlap with any class-1 object: ssd_tf's argmax falls on object #0, whose difficult
    # flag (a class-2 object here) hides the false positive; the devkit counts it.
    assert _rule_case("ssd_tf", far, [2, 1, 0], [1, 0, 0]) == ([], [], 1)
    assert _rule_case("voc", far, [2, 1, 0], [1, 0, 0]) == ([False], [True], 1)
    assert _rule_case("ssd_tf", far, [2, 1, 0], [0, 0, 0]) == ([False], [True], 1)
    # Best match difficult but below the threshold: ignored by ssd_tf, a false positive for VOC.
    low = [0.75, 0.75, 1.0, 1.0]  # IoU 0.0225 / 0.13 with object #1
    assert _rule_case("ssd_tf", low, [2, 1, 0], [0, 1, 0]) == ([], [], 0)
    assert _rule_case("voc", low, [2, 1, 0], [0, 1, 0]) == ([False], [True], 0)
    # Above the threshold and difficult: neither, in both rules.
    for rule in M.RULES:
        assert _rule_case(rule, [0.6, 0.6, 0.9, 0.9], [2, 1, 0], [0, 1, 0]) == ([], [], 0)
    # IoU exactly 0.5: ssd_tf needs more (>), the devkit accepts (>=).
    half = [0.0, 0.0, 1.0, 1.0]
    assert _rule_case("ssd_tf", half, [1, 2, 0], [0, 0, 0]) == ([False], [True], 1)
    assert _rule_case("voc", half, [1, 2, 0], [0, 0, 0]) == ([True], [False], 1)


def test_duplicates_order_and_score_floor():
    box = [0.6, 0.6, 0.9, 0.9]
    # A duplicate is a false positive. ssd_tf drops scores <= 1e-4; the devkit rule only the
    # zero-score padding.
    for rule, tp, fp in (("ssd_tf", [True, False], [False, True]), ("voc", [True, False, False], [False, True, True])):
        metric = M.VOCMetric(3, rule=rule)
        scores = [[0.9, 0.8, 0.00005, 0.0]]
        metric.update({2: (scores, [[box, box, box, [0, 0, 0, 0]]])}, [[1, 2, 0]], _GT_BOXES, [[0, 0, 0]])
        stream = metric.stream(2)
        assert (stream["tp"].tolist(), stream["fp"].tolist()) == (tp, fp), rule
    # ssd_tf matches in the order given; the devkit by decreasing score.
    unsorted = {2: ([[0.3, 0.9]], [[box, box]])}
    for rule, tp in (("ssd_tf", [True, False]), ("voc", [False, True])):
        metric = M.VOCMetric(3, rule=rule)
        metric.update(unsorted, [[1, 2, 0]], _GT_BOXES, None)
        assert metric.stream(2)["tp"].tolist() == tp


def test_mean_is_over_the_classes_given():
    metric = M.VOCMetric(21)
    box = [0.6, 0.6, 0.9, 0.9]
    metric.update({2: ([[0.9]], [[box]]), 5: ([[0.9]], [[[0, 0, 0.1, 0.1]]])}, [[1, 2, 0]], _GT_BOXES)
    result = metric.result()
    assert result["AP_VOC07/2"] == pytest.approx(1.0) and result["AP_VOC07/5"] == 0.0
    assert result["AP_VOC07/mAP"] == pytest.approx(0.5) and "AP_VOC07/3" not in result


def test_bad_input_is_named():
    metric = M.VOCMetric(3)
    det = {1: ([[0.9]], [[[0, 0, 1, 1]]])}
    with pytest.raises(ValueError, match=r"no detections were given to update"):
        metric.result()
    with pytest.raises(ValueError, match=r"batch row 0\), ground truth 1 has label 3, outside 0..2 for num_classes=3"):
        metric.update(det, [[1, 3, 0]], _GT_BOXES, None)
    with pytest.raises(ValueError, match=r"detections for class 3, outside 1..2"):
        metric.update({3: det[1]}, [[1, 2, 0]], _GT_BOXES, None)
    with pytest.raises(ValueError, match=r"class 1: scores \(1, 1\) and bboxes \(1, 1, 4\) do not fit .* B=2"):
        metric.update(det, [[1, 2, 0]] * 2, np.concatenate([_GT_BOXES] * 2), None)
    with pytest.raises(ValueError, match=r"gt_labels must be \[B, G\] and gt_bboxes \[B, G, 4\]"):
        metric.update(det, [1, 2, 0], _GT_BOXES, None)
    with pytest.raises(ValueError, match="rule must be one of"):
        M.VOCMetric(3, rule="coco")
    assert metric.num_images == 0  # nothing was half-added


def _naive_ssd_tf_matching(label, scores, bboxes, glabels, gbboxes, gdifficults, threshold):
    """tf_extended's bboxes_matching loop, one detection at a time, in float32."""
    gmatch = np.zeros(len(glabels), bool)
    tp, fp = [], []
    for box in bboxes:
        ious = []
        for gbox, glabel in zip(gbboxes, glabels):
            h = max(min(gbox[2], box[2]) - max(gbox[0], box[0]), np.float32(0))
            w = max(min(gbox[3], box[3]) - max(gbox[1], box[1]), np.float32(0))
            inter = np.float32(h * w)
            union = -inter + (gbox[2] - gbox[0]) * (gbox[3] - gbox[1]) + (box[2] - box[0]) * (box[3] - box[1])
            ious.append(np.float32(inter / union if union > 0 else 0) * np.float32(glabel == label))
        g = int(np.argmax(ious))
        match = ious[g] > np.float32(threshold)
        counted = not gdifficults[g]
        tp.append(counted and match and not gmatch[g])
        fp.append(counted and (gmatch[g] or not match))
        gmatch[g] |= counted and match
    return tp, fp


def test_random_sets_against_a_plain_loop_and_across_rules():
    rng = np.random.default_rng(13)
    for trial in range(30):
        g, k = int(rng.integers(1, 7)), int(rng.integers(1, 12))
        corners = np.sort(rng.uniform(0, 1, (g, 2, 2)), axis=1).astype(np.float32)
        gbboxes = np.stack([corners[:, 0, 0], corners[:, 0, 1], corners[:, 1, 0], corners[:, 1, 1]], axis=1)
        glabels = rng.integers(1, 4, g)
        # Detections near the objects, so that matches happen.
        picks = rng.integers(0, g, k)
        bboxes = np.clip(gbboxes[picks] + rng.normal(0, 0.05, (k, 4)), 0, 1).astype(np.float32)
        scores = np.sort(rng.uniform(0.01, 1, k))[::-1].astype(np.float32)
        difficult = rng.uniform(size=g) < 0.3
        for label in (1, 2, 3):
            n, tp, fp = M.bboxes_matching(label, scores, bboxes, glabels, gbboxes, difficult, 0.5)
            want_tp, want_fp = _naive_ssd_tf_matching(label, scores, bboxes, glabels, gbboxes, difficult, 0.5)
            assert tp.tolist() == want_tp and fp.tolist() == want_fp, (trial, label)
            assert n == np.sum((glabels == label) & ~difficult)
        # Without difficult objects (and sorted detections) both rules agree, AP included.
        results = []
        for rule in M.RULES:
            metric = M.VOCMetric(4, rule=rule)
            det = {c: (scores[None], bboxes[None]) for c in (1, 2, 3)}
            metric.update(det, glabels[None], gbboxes[None], None)
            results.append(metric.result())
        assert results[0] == results[1]


def test_update_takes_tensors():
    import tensorflow as tf

    metric = M.VOCMetric(3)
    box = tf.constant([[[0.6, 0.6, 0.9, 0.9]]])
    metric.update({tf.constant(2).numpy(): (tf.constant([[0.8]]), box)}, tf.constant([[1, 2, 0]]),
                  tf.constant(_GT_BOXES), tf.zeros([1, 3], tf.int64))  # fmt: skip
    assert metric.result()["AP_VOC12/mAP"] == pytest.approx(1.0)
