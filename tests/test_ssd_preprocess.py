"""`ssd_vgg` preprocessing: eval equal to SSD-Tensorflow's on real photos (fixtures), box
bookkeeping by hand, and training augmentations that keep every box on its object."""

import os

import numpy as np
import pytest
import tensorflow as tf

from kslim import preprocess
from kslim.preprocess import ssd_vgg

_FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "ssd", "preprocess", "expected_subsampled.npz")
_MEANS = np.array([123.0, 117.0, 104.0], np.float32)


@pytest.fixture(scope="module")
def reference():
    with np.load(_FIXTURE) as data:
        return dict(data)


@pytest.mark.parametrize("photo", ["000001.jpg", "000004.jpg"])
@pytest.mark.parametrize("mode", ["WARP_RESIZE", "PAD_AND_RESIZE", "CENTRAL_CROP"])
def test_eval_equals_ssd_tensorflow_on_photos(reference, photo, mode):
    fn = preprocess.get_preprocessing("ssd_vgg", is_training=False)
    image = tf.io.decode_jpeg(reference[f"{photo}/jpeg"].tobytes(), channels=3)
    out = fn(image, reference[f"{photo}/gt/labels"], reference[f"{photo}/gt/bboxes"], out_shape=(300, 300),
             resize=mode.lower())  # fmt: skip
    image, labels, bboxes, bbox_img = (np.asarray(t) for t in out)
    assert image.shape == (300, 300, 3) and image.dtype == np.float32
    # Every third row and column is stored (see the fixture's manifest).
    np.testing.assert_allclose(image[::3, ::3], reference[f"{photo}/{mode}/image_sub3"], rtol=0, atol=1e-4)
    np.testing.assert_array_equal(labels, reference[f"{photo}/{mode}/labels"])
    np.testing.assert_allclose(bboxes, reference[f"{photo}/{mode}/bboxes"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(bbox_img, reference[f"{photo}/{mode}/bbox_img"], rtol=0, atol=1e-6)


def test_eval_box_bookkeeping_by_hand():
    image = np.arange(100 * 150 * 3, dtype=np.float32).reshape(100, 150, 3) % 251
    boxes = np.array([[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0]], np.float32)
    labels = np.array([4, 7])
    # An image smaller than the output: pad_and_resize does not enlarge, so it pads like
    # central_crop: 100 rows at offset 100, 150 columns at offset 75.
    for mode in ("pad_and_resize", "central_crop"):
        out, out_labels, out_boxes, bbox_img = ssd_vgg.preprocess_for_eval(image, labels, boxes, (300, 300), resize=mode)
        np.testing.assert_allclose(bbox_img, [100 / 300, 75 / 300, 200 / 300, 225 / 300], atol=1e-7)
        np.testing.assert_allclose(out_boxes[1], bbox_img, atol=1e-7)
        np.testing.assert_allclose(out_boxes[0], [(100 + 10) / 300, (75 + 30) / 300, (100 + 50) / 300, (75 + 90) / 300], atol=1e-6)
        np.testing.assert_array_equal(out[100:200, 75:225], image - _MEANS)
        assert not np.asarray(out[:100]).any() and not np.asarray(out[:, :75]).any()  # zero (= mean) padding
    # Crop one side, pad the other (100x150 into 50x200): rows 25..75, columns at offset 25.
    out, _, out_boxes, bbox_img = ssd_vgg.preprocess_for_eval(image, labels, boxes, (50, 200), resize="central_crop")
    np.testing.assert_array_equal(out[:, 25:175], image[25:75] - _MEANS)
    np.testing.assert_allclose(bbox_img, [-25 / 50, 25 / 200, 75 / 50, 175 / 200], atol=1e-6)
    # pad_and_resize shrinks by min(out/size) with floor: 100x150 into 60x60 -> 40x60, padded 10 rows.
    out, _, out_boxes, bbox_img = ssd_vgg.preprocess_for_eval(image, labels, boxes, (60, 60), resize="pad_and_resize")
    np.testing.assert_allclose(bbox_img, [10 / 60, 0, 50 / 60, 1], atol=1e-6)
    np.testing.assert_allclose(out_boxes[0], [(10 + 4) / 60, 12 / 60, (10 + 20) / 60, 36 / 60], atol=1e-6)
    # none: only the means; warp: boxes unchanged. SSD-Tensorflow's enum values work too.
    out, _, out_boxes, bbox_img = ssd_vgg.preprocess_for_eval(image.astype(np.uint8), labels, boxes, resize=1)
    np.testing.assert_array_equal(out, image.astype(np.uint8) - _MEANS)
    np.testing.assert_array_equal(out_boxes, boxes)
    out, _, out_boxes, _ = ssd_vgg.preprocess_for_eval(image, labels, boxes, (30, 40))
    assert out.shape == (30, 40, 3)
    np.testing.assert_array_equal(out_boxes, boxes)


def test_eval_drops_difficult_objects_when_given():
    image = np.zeros((40, 50, 3), np.uint8)
    boxes = np.array([[0.1, 0.1, 0.4, 0.4], [0.5, 0.5, 0.9, 0.9], [0.2, 0.3, 0.6, 0.8]], np.float32)
    fn = preprocess.get_preprocessing("ssd_300_vgg")
    _, labels, out_boxes, _ = fn(image, [3, 5, 9], boxes, difficults=[0, 1, 0])
    np.testing.assert_array_equal(labels, [3, 9])
    np.testing.assert_array_equal(out_boxes, boxes[[0, 2]])
    _, labels, _, _ = fn(image, [3, 5, 9], boxes)
    np.testing.assert_array_equal(labels, [3, 5, 9])


def test_factory_signature_and_errors():
    fn = preprocess.get_preprocessing("ssd_vgg", is_training=True)
    assert fn.family == "ssd_vgg" and fn.is_training
    assert preprocess.preprocessing_family("ssd_512_vgg") == "ssd_vgg"
    with pytest.raises(ValueError, match="resize must be one of none, central_crop, pad_and_resize, warp_resize"):
        preprocess.get_preprocessing("ssd_vgg")(np.zeros((8, 8, 3), np.uint8), [1], [[0, 0, 1, 1]], resize="stretch")
    with pytest.raises(ValueError, match="no grayscale"):
        preprocess.get_preprocessing("ssd_vgg", use_grayscale=True)
    with pytest.raises(ValueError, match=r"one \[height, width, channels\] image"):
        fn(np.zeros((2, 8, 8, 3), np.uint8), [1], [[0, 0, 1, 1]])
    image, labels, bboxes = fn(np.zeros((8, 8, 3), np.uint8), [1], [[0, 0, 1, 1]], out_shape=(16, 12), data_format="NCHW")
    assert image.shape == (3, 16, 12) and labels.dtype == tf.int32 and bboxes.shape[1:] == (4,)
    assert labels.shape[0] == bboxes.shape[0] <= 1


# Training: three objects on a canvas, drawn one at a time (a light gray object on a dark
# gray ground). Every colour op keeps gray pixels gray and is increasing in the pixel value
# (contrast is affine in it), so in each output the object is where the pixels are
# brighter than half-way: it must lie under its output box, whatever crop, flip and colour
# ordering the seed drew. The crop depends on the boxes, not the pixels: the same seed
# transforms the three pictures alike.
_H, _W, _OUT = 120, 160, 48
_BOXES = np.array([[0.10, 0.05, 0.40, 0.30], [0.55, 0.50, 0.85, 0.70], [0.20, 0.70, 0.45, 0.95]], np.float32)


def _canvas(k=None):
    image = np.full((_H, _W, 3), 40, np.uint8)
    if k is not None:
        y0, x0, y1, x1 = np.round(_BOXES[k] * [_H, _W, _H, _W]).astype(int)
        image[y0:y1, x0:x1] = 220
    return image


def test_training_keeps_every_box_on_its_object():
    fn = preprocess.get_preprocessing("ssd_vgg", is_training=True)
    labels = tf.constant([1, 2, 3], tf.int64)
    pictures = tf.constant(np.stack([_canvas(k) for k in range(3)]))

    def run(seed):
        outs = [fn(pictures[k], labels, _BOXES, out_shape=(_OUT, _OUT), seed=seed) for k in range(3)]
        return tf.stack([o[0] for o in outs]), outs[0][1], outs[0][2]

    seeds = tf.data.Dataset.range(60).map(lambda s: tf.stack([s, 7]))
    results = list(seeds.map(run).as_numpy_iterator())  # graph-safe inside tf.data
    rows, cols = np.arange(_OUT)[:, None] + 0.5, np.arange(_OUT)[None, :] + 0.5
    distinct_boxes, kept = set(), 0
    for images, out_labels, out_boxes in results:
        assert images.min() >= -_MEANS.max() - 1e-3 and images.max() <= 255 - _MEANS.min() + 1e-3
        distinct_boxes.add(np.round(out_boxes, 4).tobytes())
        for label, box in zip(out_labels, out_boxes):
            gray = images[int(label) - 1] + _MEANS
            assert np.ptp(gray, axis=-1).max() < 1e-3  # gray stays gray
            y0, x0, y1, x1 = np.clip(box, 0, 1) * _OUT
            inner = (rows > y0 + 2) & (rows < y1 - 2) & (cols > x0 + 2) & (cols < x1 - 2)
            outer = (rows > y0 - 2) & (rows < y1 + 2) & (cols > x0 - 2) & (cols < x1 + 2)
            value = gray[..., 0]
            if outer.all():  # the object fills the output
                assert np.ptp(value[inner]) < 1e-3
                continue
            bright = value > (value.min() + value.max()) / 2
            assert bright[inner].all() and not bright[~outer].any(), (int(label), box)
            kept += 1
    assert len(distinct_boxes) > 40 and kept > 60
    # The same seed repeats itself; another does not.
    a = fn(pictures[1], labels, _BOXES, out_shape=(_OUT, _OUT), seed=[3, 4])
    b = fn(pictures[1], labels, _BOXES, out_shape=(_OUT, _OUT), seed=[3, 4])
    c = fn(pictures[1], labels, _BOXES, out_shape=(_OUT, _OUT), seed=[3, 5])
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])


def test_training_drops_boxes_mostly_outside_the_crop():
    # bboxes_filter_overlap: more than half of the box inside [0, 1]^2 is kept.
    labels = tf.constant([1, 2, 3, 4])
    boxes = tf.constant([[-0.5, 0.0, 0.49, 1.0], [-0.5, 0.0, 0.51, 1.0], [0.2, 0.2, 0.2, 0.6], [0.1, 0.1, 0.9, 0.9]])
    kept_labels, kept_boxes = ssd_vgg.bboxes_filter_overlap(labels, boxes)
    np.testing.assert_array_equal(kept_labels, [2, 4])
    np.testing.assert_array_equal(kept_boxes, tf.gather(boxes, [1, 3]))  # not clipped
    # bboxes_resize: boxes relative to a crop window.
    np.testing.assert_allclose(
        ssd_vgg.bboxes_resize(tf.constant([0.2, 0.4, 0.6, 0.8]), tf.constant([[0.3, 0.5, 0.5, 0.6]])),
        [[0.25, 0.25, 0.75, 0.5]], atol=1e-6,
    )  # fmt: skip


def test_training_on_an_image_without_objects():
    fn = preprocess.get_preprocessing("ssd_vgg", is_training=True)
    image, labels, bboxes = fn(_canvas(), tf.zeros([0], tf.int64), tf.zeros([0, 4]), out_shape=(32, 40), seed=[1, 2])
    assert image.shape == (32, 40, 3) and labels.shape == (0,) and bboxes.shape == (0, 4)


def test_training_names_boxes_outside_the_image():
    fn = preprocess.get_preprocessing("ssd_vgg", is_training=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"(?s)boxes must lie in \[0, 1\].*0.5, 1.3"):
        fn(_canvas(), [1], [[0.1, 0.1, 0.5, 1.3]], out_shape=(16, 16), seed=[1, 2])
