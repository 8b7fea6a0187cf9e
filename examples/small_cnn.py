"""The walkthrough's "Convolutional neural nets": a small CNN, checked on random images,
then trained with model.fit and evaluated with slim's Accuracy and Recall@5.

slim_walkthrough.ipynb's `my_cnn`: conv 64 5x5 -> max pool 3/2 -> conv 64 5x5 -> max pool
3/2 -> flatten -> fc 192 -> fc num_classes. The notebook trained it on flowers at 299 px;
here it trains on the embedded digits (slim's MNIST layout, lenet preprocessing), so it
runs anywhere in seconds; pass --dataset_name/--dataset_dir/--preprocessing for others.

    python examples/small_cnn.py --steps 300
"""

from __future__ import annotations

import argparse
import os
import tempfile

import keras
import numpy as np

import kslim
from kslim import training


@keras.saving.register_keras_serializable(package="examples")
class MyCNN(keras.Model):
    """The walkthrough's `my_cnn` (slim's conv defaults: SAME conv, ReLU; VALID pools)."""

    def __init__(self, num_classes=10, name="my_cnn", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = num_classes
        self.conv1 = keras.layers.Conv2D(64, 5, padding="same", activation="relu", name="conv1")
        self.pool1 = keras.layers.MaxPooling2D(3, 2, name="pool1")
        self.conv2 = keras.layers.Conv2D(64, 5, padding="same", activation="relu", name="conv2")
        self.pool2 = keras.layers.MaxPooling2D(3, 2, name="pool2")
        self.flatten = keras.layers.Flatten()
        self.fc3 = keras.layers.Dense(192, activation="relu", name="fc3")
        self.fc4 = keras.layers.Dense(num_classes, name="fc4")  # logits

    def call(self, images, training=None):
        net = self.pool1(self.conv1(images))
        net = self.pool2(self.conv2(net))
        return self.fc4(self.fc3(self.flatten(net)))

    def get_config(self):
        return {"num_classes": self.num_classes, "name": self.name}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset_name", default="digits")
    parser.add_argument("--dataset_dir", default=None)
    parser.add_argument("--preprocessing", default="lenet")
    parser.add_argument("--image_size", type=int, default=28)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--train_dir", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    train_split = kslim.data.get_split(args.dataset_name, "train", args.dataset_dir)
    test_split = kslim.data.get_split(args.dataset_name, "test", args.dataset_dir)
    channels = train_split.spec.channels

    # Apply the net to random images: the softmax of each row sums to 1.
    model = MyCNN(train_split.num_classes)
    images = np.random.default_rng(args.seed).uniform(
        size=(5, args.image_size, args.image_size, channels)).astype("float32")
    probabilities = keras.ops.softmax(model(images)).numpy()
    row_sums = probabilities.sum(axis=1)
    print("softmax shape", probabilities.shape, "row sums", np.round(row_sums, 6))

    # Train with slim's loss and a slim-format checkpoint.
    train = kslim.data.input_pipeline(train_split, args.batch_size, args.preprocessing,
                                      image_size=args.image_size, is_training=True,
                                      seed=args.seed)
    train_dir = args.train_dir or tempfile.mkdtemp(prefix="my_cnn-")
    model.compile(optimizer=keras.optimizers.Adam(0.001), loss=training.SoftmaxCrossEntropy())
    saver = training.SlimCheckpoint(train_dir, save_interval_secs=None)
    model.fit(train, steps_per_epoch=args.steps, epochs=1, verbose=2, shuffle=False,
              callbacks=[saver, training.StopOnNaN()])

    # Evaluate: slim's eval/Accuracy and eval/Recall_5 over the test split.
    test = kslim.data.input_pipeline(test_split, 100, args.preprocessing,
                                     image_size=args.image_size, is_training=False)
    result = training.evaluate_model(model, test)
    print(f"checkpoint {saver.saved[-1]}")
    print(f"eval/Accuracy={result.accuracy} eval/Recall_5={result.recall_5}")
    return {"row_sums": row_sums, "accuracy": result.accuracy, "recall_5": result.recall_5,
            "checkpoint": saver.saved[-1]}


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
