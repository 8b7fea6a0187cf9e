"""The walkthrough's "Using pre-trained models": classify photos with a model-zoo net.

slim_walkthrough.ipynb downloads Inception V1 (1001 classes, class 0 = background) and
VGG-16 (1000 classes, hence its `names[index + 1]` shift), restores them with
`assign_from_checkpoint_fn`, applies the net's preprocessing and prints the top 5 with
ImageNet names. Here `weights="slim"` fetches and caches the zoo checkpoint,
`kslim.preprocess` is the net's preprocessing and `decode_predictions` knows both label
sets (no index shifting by hand).

    python examples/pretrained_inference.py photo.jpg                  # inception_v1
    python examples/pretrained_inference.py --model vgg_16 photo.jpg
    python examples/pretrained_inference.py --weights /ckpts/inception_v1.ckpt photo.jpg
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import tensorflow as tf

import kslim
from kslim.models.imagenet import decode_predictions


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", help="image files (JPEG, PNG, ...)")
    parser.add_argument("--model", default="inception_v1", help="a kslim/slim net name")
    parser.add_argument("--weights", default="slim",
                        help="'slim' (the zoo checkpoint), 'slim:<tag>' or a checkpoint path")
    parser.add_argument("--top", type=int, default=5)
    args = parser.parse_args(argv)

    spec = kslim.models.get_spec(args.model)
    model = kslim.models.create_model(args.model, weights=args.weights)
    size = spec.image_size
    preprocess = kslim.preprocess.get_preprocessing(spec.preprocessing, is_training=False)
    results = {}
    for path in args.images:
        with open(path, "rb") as f:
            image = tf.io.decode_image(f.read(), channels=3, expand_animations=False)
        batch = preprocess(image, size, size)[tf.newaxis]
        probabilities = tf.nn.softmax(model(batch, training=False)).numpy()
        top = decode_predictions(probabilities, top=args.top)[0]
        print(f"{path}  ({args.model}, {probabilities.shape[-1]} classes)")
        for synset, name, probability in top:
            print(f"  {100 * probability:6.2f}%  {name}  [{synset}]")
        results[path] = top
    return {"predictions": results, "num_classes": int(model.num_classes)}


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    np.set_printoptions(suppress=True)
    main()
