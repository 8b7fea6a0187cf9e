"""slim's queue-based input pipeline, in a TF1 graph, for `benchmarks/input_pipeline.py`.

What `train_image_classifier.py` builds: tf_slim's `DatasetDataProvider` (parallel
`TFRecordReader`s feeding a shuffling common queue, `TFExampleDecoder`), inception
preprocessing in training mode, and `tf.compat.v1.train.batch` with preprocessing threads,
run by queue runners in a `tf.compat.v1.Session`. slim's defaults: 4 readers, 4
preprocessing threads, common queue of 20 x batch (min 10 x batch), batch queue of 5 x batch.

The preprocessing is slim's `inception_preprocessing` (the tf_slim-era file), written out
here step by step with the TF1 ops it uses (research/slim is not an installable package):
training, fast mode: convert to float, distorted bounding-box crop, TF1 bilinear resize,
random flip, brightness and saturation, clip, scale to [-1, 1]; eval: convert, central
crop of 87.5%, TF1 bilinear resize, scale.
"""

from __future__ import annotations

import time

from kslim.compat import import_tf_slim


def _slim_inception_train(image, height: int, width: int):
    import tensorflow as tf

    tf1 = tf.compat.v1
    bbox = tf.constant([0.0, 0.0, 1.0, 1.0], dtype=tf.float32, shape=[1, 1, 4])
    image = tf1.image.convert_image_dtype(image, dtype=tf.float32)
    begin, size, _ = tf1.image.sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=bbox,
        min_object_covered=0.1,
        aspect_ratio_range=(0.75, 1.33),
        area_range=(0.05, 1.0),
        max_attempts=100,
        use_image_if_no_bounding_boxes=True,
    )
    image = tf.slice(image, begin, size)
    image.set_shape([None, None, 3])
    image = tf1.image.resize_images(image, [height, width], method=tf1.image.ResizeMethod.BILINEAR)
    image = tf1.image.random_flip_left_right(image)
    image = tf1.image.random_brightness(image, max_delta=32.0 / 255.0)
    image = tf1.image.random_saturation(image, lower=0.5, upper=1.5)
    image = tf.clip_by_value(image, 0.0, 1.0)
    return (image - 0.5) * 2.0


def _slim_inception_eval(image, height: int, width: int):
    import tensorflow as tf

    tf1 = tf.compat.v1
    image = tf1.image.convert_image_dtype(image, dtype=tf.float32)
    image = tf1.image.central_crop(image, central_fraction=0.875)
    image = tf1.image.resize_bilinear(tf.expand_dims(image, 0), [height, width], align_corners=False)[0]
    return (image - 0.5) * 2.0


def measure(
    file_pattern: str, num_samples: int, batch_size: int, image_size: int, batches: int, warmup: int, training: bool
) -> tuple[float, float]:
    """Wall-clock and process CPU seconds of `batches` batches of slim's pipeline, after
    `warmup` batches.

    Training: train_image_classifier.py's provider and batch settings; eval:
    eval_image_classifier.py's (no shuffling, a common queue of 2 x batch).
    """
    slim = import_tf_slim()
    import tensorflow as tf

    tf1 = tf.compat.v1
    with tf.Graph().as_default():
        keys_to_features = {  # research/slim datasets/flowers.py
            "image/encoded": tf1.FixedLenFeature((), tf.string, default_value=""),
            "image/format": tf1.FixedLenFeature((), tf.string, default_value="png"),
            "image/class/label": tf1.FixedLenFeature([], tf.int64, default_value=tf.zeros([], dtype=tf.int64)),
        }
        items_to_handlers = {
            "image": slim.tfexample_decoder.Image(),
            "label": slim.tfexample_decoder.Tensor("image/class/label"),
        }
        dataset = slim.dataset.Dataset(
            data_sources=file_pattern,
            reader=tf1.TFRecordReader,
            decoder=slim.tfexample_decoder.TFExampleDecoder(keys_to_features, items_to_handlers),
            num_samples=num_samples,
            items_to_descriptions={},
            num_classes=5,
        )
        if training:
            provider = slim.dataset_data_provider.DatasetDataProvider(
                dataset, num_readers=4, common_queue_capacity=20 * batch_size, common_queue_min=10 * batch_size
            )
        else:
            provider = slim.dataset_data_provider.DatasetDataProvider(
                dataset, shuffle=False, common_queue_capacity=2 * batch_size, common_queue_min=batch_size
            )
        image, label = provider.get(["image", "label"])
        preprocess = _slim_inception_train if training else _slim_inception_eval
        image = preprocess(image, image_size, image_size)
        image.set_shape([image_size, image_size, 3])
        images, labels = tf1.train.batch([image, label], batch_size=batch_size, num_threads=4, capacity=5 * batch_size)
        # Fetch one value of each batch: the batch is dequeued (all the work done) without
        # copying it into numpy, as a model consuming it in the graph would.
        consumed = [images[0, 0, 0, 0], labels[0]]
        with tf1.Session() as sess:
            sess.run([tf1.global_variables_initializer(), tf1.local_variables_initializer()])
            coord = tf1.train.Coordinator()
            threads = tf1.train.start_queue_runners(sess, coord)
            try:
                for _ in range(warmup):
                    sess.run(consumed)
                start, cpu = time.perf_counter(), time.process_time()
                for _ in range(batches):
                    sess.run(consumed)
                elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
            finally:
                coord.request_stop()
                coord.join(threads, stop_grace_period_secs=10)
    return elapsed, cpu
