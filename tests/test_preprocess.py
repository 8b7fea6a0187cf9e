"""kslim.preprocess against slim: eval outputs on real photographs, train-mode ranges."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import kslim.preprocess as P
from data_helpers import FIXTURES, PHOTOS, photo
from kslim.preprocess import _ops, cifarnet, inception, vgg

_CASES = json.load(open(os.path.join(FIXTURES, "preprocess", "preprocess.json")))["cases"]
_EXPECTED = np.load(os.path.join(FIXTURES, "preprocess", "preprocess_subsampled.npz"))


def _subsample(output: np.ndarray, stride: int) -> np.ndarray:
    rows = np.unique(np.r_[np.arange(0, output.shape[0], stride), output.shape[0] - 1])
    cols = np.unique(np.r_[np.arange(0, output.shape[1], stride), output.shape[1] - 1])
    return output[rows][:, cols]


# -- eval mode equals slim ------------------------------------------------------------------


@pytest.mark.parametrize("case", _CASES, ids=[c["key"] for c in _CASES])
def test_eval_matches_slim(case):
    image = photo(case["image"])
    if case["preprocessing"] == "lenet":
        image = image[:, :, :1]
    fn = P.get_preprocessing(case["preprocessing"], is_training=False)
    out = fn(tf.constant(image), case["output_height"], case["output_width"]).numpy()
    assert out.dtype == np.float32
    assert list(out.shape) == case["output_shape"]
    tolerance = 1e-3 if case["preprocessing"] == "vgg" else 1e-4
    np.testing.assert_allclose(_subsample(out, case["stride"]), _EXPECTED[case["key"]], rtol=0, atol=tolerance)


def test_fixture_covers_every_function_size_and_image():
    families = {c["preprocessing"] for c in _CASES}
    assert families == {"vgg", "inception", "lenet", "cifarnet"}
    assert {c["image"] for c in _CASES} == set(PHOTOS)
    assert len({(c["output_height"], c["output_width"]) for c in _CASES if c["preprocessing"] == "inception"}) == 3


def test_eval_inside_tf_data_equals_eager():
    image = photo("coffee.jpg")
    fn = P.get_preprocessing("inception_v3")
    eager = fn(tf.constant(image), 299, 299).numpy()
    ds = tf.data.Dataset.from_tensors(image).map(lambda x: fn(x, 299, 299))
    np.testing.assert_array_equal(next(iter(ds)).numpy(), eager)


# -- the factory ----------------------------------------------------------------------------

_SLIM_MAP = {
    "inception": [
        "inception", "inception_v1", "inception_v2", "inception_v3", "inception_v4",
        "inception_resnet_v2", "mobilenet_v1", "mobilenet_v2", "mobilenet_v2_035",
        "mobilenet_v2_140", "mobilenet_v3_small", "mobilenet_v3_large",
        "mobilenet_v3_small_minimalistic", "mobilenet_v3_large_minimalistic",
        "mobilenet_edgetpu", "mobilenet_edgetpu_075", "nasnet_mobile", "nasnet_large",
        "pnasnet_mobile", "pnasnet_large",
    ],
    "vgg": [
        "vgg", "vgg_a", "vgg_16", "vgg_19", "resnet_v1_50", "resnet_v1_101", "resnet_v1_152",
        "resnet_v1_200", "resnet_v2_50", "resnet_v2_101", "resnet_v2_152", "resnet_v2_200",
    ],
    "lenet": ["lenet"],
    "cifarnet": ["cifarnet"],
}  # fmt: skip


@pytest.mark.parametrize("family", sorted(_SLIM_MAP))
def test_every_slim_name_maps_to_its_family(family):
    for name in _SLIM_MAP[family]:
        assert P.preprocessing_family(name) == family
        assert P.get_preprocessing(name).family == family


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"\[resnet_v3\] was not recognized.*inception_v3.*vgg_16"):
        P.get_preprocessing("resnet_v3")


def test_kwargs_reach_the_family():
    image = tf.constant(photo("chelsea.png"))
    plain = P.get_preprocessing("inception")(image, 64, 64)
    uncropped = P.get_preprocessing("inception")(image, 64, 64, crop_image=False)
    assert not np.allclose(plain, uncropped)
    resized = P.get_preprocessing("vgg")(image, 64, 64, resize_side_min=100)
    assert resized.shape == (64, 64, 3)


@pytest.mark.parametrize("name", ["inception", "vgg", "cifarnet"])
def test_use_grayscale_gives_one_channel(name):
    image = tf.constant(photo("rocket.jpg"))
    for training in (False, True):
        out = P.get_preprocessing(name, is_training=training, use_grayscale=True)(image, 32, 32)
        assert out.shape == (32, 32, 1)


# -- quirks kept from slim, each in one helper ----------------------------------------------


def test_legacy_resize_samples_like_tf1():
    # TF1 maps output pixel i to input i * in/out (no half-pixel shift): [0, 10] -> 4 wide
    # samples at 0, 0.5, 1, 1.5 -> [0, 5, 10, 10]; TF2's resize would give [0, 2.5, 7.5, 10].
    image = tf.constant([[[0.0], [10.0]]])
    out = _ops.legacy_resize(image, [1, 4], 0).numpy().ravel()
    np.testing.assert_allclose(out, [0, 5, 10, 10])


def test_vgg_rounds_the_resized_side():
    # chelsea.png is 300x451: scale 256/300 -> width 384.85, which slim rounds (rint) to 385.
    height, width = vgg._smallest_size_at_least(300, 451, 256)
    assert (int(height), int(width)) == (256, 385)


# -- train mode: shapes, ranges, variation with the seed ------------------------------------

_SEEDS = [tf.constant([s, 7]) for s in range(6)]


@pytest.mark.parametrize(
    "name,size,low,high",
    [
        ("inception", (96, 80), -1.0, 1.0),
        ("vgg", (64, 72), -123.68, 255 - 103.94),
        ("cifarnet", (32, 32), -20.0, 20.0),
        ("lenet", (28, 28), -1.0, 127 / 128),
    ],
)
def test_train_shapes_ranges_and_seeds(name, size, low, high):
    image = tf.constant(photo("astronaut_256.png")[:, :, :1] if name == "lenet" else photo("astronaut_256.png"))
    fn = P.get_preprocessing(name, is_training=True)
    outs = [fn(image, *size, seed=s).numpy() for s in _SEEDS]
    channels = 1 if name == "lenet" else 3
    for out in outs:
        assert out.shape == (*size, channels) and out.dtype == np.float32
        assert np.all(np.isfinite(out))
        assert out.min() >= low - 1e-5 and out.max() <= high + 1e-5
    np.testing.assert_array_equal(fn(image, *size, seed=_SEEDS[0]).numpy(), outs[0])
    distinct = {out.tobytes() for out in outs}
    assert len(distinct) == (1 if name == "lenet" else len(outs))


def test_train_in_tf_data_is_deterministic_with_seeds():
    fn = P.get_preprocessing("inception_v1", is_training=True)
    image = photo("coffee.jpg")

    def run():
        images = tf.data.Dataset.from_tensors(image).repeat(4)
        seeds = tf.data.Dataset.random(seed=3).batch(2)
        ds = tf.data.Dataset.zip(images, seeds).map(lambda x, s: fn(x, 64, 64, seed=s), num_parallel_calls=4)
        return np.stack(list(ds.as_numpy_iterator()))

    first, second = run(), run()
    np.testing.assert_array_equal(first, second)
    assert len({x.tobytes() for x in first}) == 4


def test_inception_full_mode_and_bbox():
    image = tf.constant(photo("chelsea.png"))
    bbox = tf.constant([[[0.1, 0.2, 0.6, 0.7]]])
    fn = P.get_preprocessing("inception", is_training=True)
    outs = [fn(image, 48, 48, bbox=bbox, fast_mode=False, seed=s).numpy() for s in _SEEDS]
    for out in outs:
        assert out.shape == (48, 48, 3) and -1 <= out.min() and out.max() <= 1


def test_inception_crop_stays_in_slims_ranges():
    image = tf.zeros([300, 400, 3])
    whole = tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4])
    areas, ratios = [], []
    for s in range(60):
        crop, _ = inception.distorted_bounding_box_crop(image, whole, seed=[s, 1])
        h, w = crop.shape[0], crop.shape[1]
        areas.append(h * w / (300 * 400))
        ratios.append(w / h)
    # sample_distorted_bounding_box rounds to whole pixels: allow a pixel of slack.
    assert min(areas) >= 0.05 * 0.95 and max(areas) <= 1.0
    assert min(ratios) >= 0.75 * 0.97 and max(ratios) <= 1.33 * 1.03
    assert max(areas) - min(areas) > 0.3  # it does vary


def test_inception_colour_distortion_ranges():
    gray = tf.fill([8, 8, 3], 0.5)
    shifts = [
        float(inception.distort_color(gray, 0, fast_mode=True, seed=[s, 2]).numpy().mean()) - 0.5 for s in range(40)
    ]
    # Saturation leaves gray alone, so the shift is the brightness delta: |delta| <= 32/255.
    assert max(abs(d) for d in shifts) <= 32 / 255 + 1e-6
    assert min(shifts) < -0.03 and max(shifts) > 0.03
    for ordering in range(4):
        out = inception.distort_color(tf.random.uniform([8, 8, 3], seed=1), ordering, fast_mode=False, seed=[1, 2])
        assert 0.0 <= float(tf.reduce_min(out)) and float(tf.reduce_max(out)) <= 1.0
    with pytest.raises(ValueError, match="color_ordering"):
        inception.distort_color(gray, 4, fast_mode=False)


def test_vgg_train_resize_side_in_256_512():
    # A horizontal ramp 0..255 across 256 columns: after scaling the smaller side to s, one
    # output column step changes the value by about 256 / s.
    ramp = np.tile(np.arange(256, dtype=np.uint8)[None, :, None], [256, 1, 3])
    sides = []
    for s in range(30):
        out = vgg.preprocess_for_train(tf.constant(ramp), 64, 64, seed=[s, 5]).numpy()
        step = np.abs(np.diff(out[32, 8:56, 0])).mean()
        sides.append(256 / step)
    assert 250 <= min(sides) and max(sides) <= 520
    assert max(sides) - min(sides) > 100


def test_cifarnet_train_pads_crops_and_standardizes():
    image = tf.constant(photo("rocket.jpg")[100:132, 200:232])
    outs = [cifarnet.preprocess_for_train(image, 32, 32, seed=[s, 9]).numpy() for s in range(8)]
    for out in outs:
        assert abs(out.mean()) < 1e-4 and abs(out.std() - 1) < 1e-2
    # Some crops reach into the 4-pixel zero padding: a border row or column that is
    # constant along its length (per channel: contrast scales each channel around its mean).
    borders = lambda o: (o[0], o[-1], o[:, 0], o[:, -1])  # noqa: E731
    padded = [any(np.ptp(b, axis=0).max() < 1e-5 for b in borders(o)) for o in outs]
    assert any(padded)


def test_unseeded_training_varies_between_calls():
    fn = P.get_preprocessing("inception", is_training=True)
    image = tf.constant(photo("coffee.jpg"))
    assert not np.array_equal(fn(image, 32, 32).numpy(), fn(image, 32, 32).numpy())


def test_jpeg_entry_point_decodes_only_the_same_crop():
    from data_helpers import jpeg, photo_bytes

    fn = P.get_preprocessing("inception_v3", is_training=True)
    for data in (photo_bytes("coffee.jpg"), jpeg(photo("chelsea.png"))):
        image = tf.io.decode_jpeg(data, channels=3)
        for s in _SEEDS[:3]:
            whole = fn(image, 64, 48, seed=s).numpy()
            cropped = fn.jpeg_fn(tf.constant(data), 64, 48, seed=s).numpy()
            assert cropped.shape == whole.shape
            # Same crop and distortions; only JPEG chroma upsampling at the window's edge
            # can change a few pixels by a few levels.
            assert np.abs(cropped - whole).mean() < 2e-3
    assert P.get_preprocessing("inception_v3").jpeg_fn is None
    assert P.get_preprocessing("vgg_16", is_training=True).jpeg_fn is None


def test_fast_saturation_equals_tf_adjust_saturation():
    # Includes values outside [0, 1], as after slim's brightness step, and gray pixels.
    image = tf.concat([tf.random.uniform([16, 16, 3], -0.2, 1.2, seed=4), tf.fill([1, 16, 3], 0.5)], axis=0)
    for factor in (0.0, 0.5, 1.0, 1.3, 1.5, 3.0):
        np.testing.assert_allclose(
            _ops.adjust_saturation(image, factor), tf.image.adjust_saturation(image, factor), atol=2e-6
        )
