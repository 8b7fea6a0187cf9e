"""Helpers for the SSD training/eval/CLI tests: a tiny `shapes` set in SSD-Tensorflow's
VOC layout, and a vgg_16-named checkpoint of the 13 backbone convs."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

# Conv shapes of slim's vgg_16 (and of SSD's backbone): scope -> [3, 3, in, out].
VGG_CONVS = {f"conv{b}/conv{b}_{i}": (3, 3, cin if i == 1 else cout, cout)
             for b, (n, cin, cout) in enumerate(((2, 3, 64), (2, 64, 128), (3, 128, 256),
                                                 (3, 256, 512), (3, 512, 512)), start=1)
             for i in range(1, n + 1)}


def write_tiny_shapes(folder, train: int = 24, test: int = 9) -> str:
    """A `shapes` dataset folder with `train` and `test` canvases (seeds 10 and 11),
    written with kslim.data's own generator and VOC record writer."""
    from kslim.data import _records, _specs
    from kslim.data._shapes import SIZE, draw_shapes
    from kslim.data._voc import VOCAnnotation, voc_example, write_voc_records

    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    spec = _specs.DATASETS["shapes"]
    names = spec.default_labels
    for split, count, seed in (("train", train, 10), ("test", test, 11)):
        rng = np.random.default_rng(seed)
        examples = []
        for _ in range(count):
            image, labels, boxes = draw_shapes(rng)
            annotation = VOCAnnotation(filename="", shape=(SIZE, SIZE, 3),
                                       names=[names[k] for k in labels],
                                       boxes=[tuple(float(v) for v in b) for b in boxes],
                                       difficult=[0] * len(labels),
                                       truncated=[0] * len(labels))
            encoded = tf.io.encode_jpeg(image, quality=95).numpy()
            examples.append(voc_example(encoded, annotation, labels))
        write_voc_records(folder, spec.file_pattern, split, examples)
    _records.write_label_file(dict(enumerate(names)), folder)
    return folder


def write_vgg16_checkpoint(prefix, fc_depth: int = 8) -> dict[str, np.ndarray]:
    """A checkpoint with slim vgg_16's names: the 13 convs at their real shapes, and
    small `fc6`/`fc7`/`fc8` (SSD has none) plus `global_step`. Returns the values."""
    rng = np.random.default_rng(5)
    values = {}
    for scope, shape in VGG_CONVS.items():
        values[f"vgg_16/{scope}/weights"] = rng.normal(0, 0.05, shape).astype(np.float32)
        values[f"vgg_16/{scope}/biases"] = rng.normal(0, 0.05, shape[-1:]).astype(np.float32)
    for scope, shape in (("fc6", (7, 7, 512, fc_depth)), ("fc7", (1, 1, fc_depth, fc_depth)),
                         ("fc8", (1, 1, fc_depth, 10))):
        values[f"vgg_16/{scope}/weights"] = rng.normal(0, 0.05, shape).astype(np.float32)
        values[f"vgg_16/{scope}/biases"] = np.zeros(shape[-1:], np.float32)
    graph = tf.Graph()
    with graph.as_default():
        variables = [tf.compat.v1.Variable(v, name=n) for n, v in values.items()]
        variables.append(tf.compat.v1.Variable(np.int64(7), name="global_step"))
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, os.fspath(prefix), write_meta_graph=False)
    return values
