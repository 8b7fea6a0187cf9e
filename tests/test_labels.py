"""ImageNet label names and decode_predictions for 1000- and 1001-class outputs."""

import numpy as np
import pytest
import tensorflow as tf

from kslim.models import imagenet
from kslim.models.imagenet import class_names, decode_predictions, synsets


def test_label_sets_follow_slims_order():
    ids = synsets()
    assert len(ids) == 1000 and list(ids) == sorted(ids) and len(set(ids)) == 1000
    assert ids[0] == "n01440764" and ids[-1] == "n15075141"
    names = class_names(1000)
    assert names[0] == "tench, Tinca tinca"
    assert names[281] == "tabby, tabby cat" and ids[281] == "n02123045"
    assert names[986] == "yellow lady's slipper, yellow lady-slipper, Cypripedium " \
                         "calceolus, Cypripedium parviflorum"
    with_background = class_names(1001)
    assert with_background[0] == imagenet.BACKGROUND == "background"
    assert with_background[1:] == names
    with pytest.raises(ValueError, match="1000 classes"):
        class_names(10)


def test_decode_1000_and_1001_agree():
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((3, 1000)).astype(np.float32)
    scores[0, 281] = 50.0  # tabby
    scores[1, 0] = 40.0  # tench
    scores[2, 999] = 30.0  # toilet tissue
    decoded = decode_predictions(scores, top=3)
    assert [row[0][:2] for row in decoded] == [
        ("n02123045", "tabby, tabby cat"), ("n01440764", "tench, Tinca tinca"),
        ("n15075141", "toilet tissue, toilet paper, bathroom tissue")]
    assert decoded[0][0][2] == 50.0 and len(decoded[0]) == 3
    assert [s for _, _, s in decoded[1]] == sorted((s for _, _, s in decoded[1]), reverse=True)
    # The same scores behind a background column decode to the same classes.
    with_background = np.concatenate([np.full((3, 1), -99.0, np.float32), scores], axis=1)
    assert decode_predictions(tf.constant(with_background), top=3) == decoded


def test_decode_background_and_errors():
    scores = np.zeros((1, 1001), np.float32)
    scores[0, 0], scores[0, 1] = 2.0, 1.0
    top = decode_predictions(scores, top=2)[0]
    assert top == [("background", "background", 2.0), ("n01440764", "tench, Tinca tinca", 1.0)]
    assert len(decode_predictions(scores, top=5000)[0]) == 1001
    with pytest.raises(ValueError, match=r"got shape \(1, 10\)"):
        decode_predictions(np.zeros((1, 10)))
    with pytest.raises(ValueError, match=r"got shape \(1000,\)"):
        decode_predictions(np.zeros(1000))
    with pytest.raises(ValueError, match="positive"):
        decode_predictions(scores, top=0)
