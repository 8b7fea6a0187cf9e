"""slim's per-net image preprocessing, as TF ops that run inside `tf.data`.

Mirrors research/slim `preprocessing/preprocessing_factory.py`: one function per family
(`vgg`, `inception`, `lenet`, `cifarnet`) and a name map from every net name slim maps to
its family. Eval outputs equal slim's; train mode draws the same augmentations over the
same ranges, with stateless random ops so that a seeded `tf.data` pipeline repeats itself.

Example:
    >>> fn = kslim.preprocess.get_preprocessing("inception_v3", is_training=True)
    >>> ds = ds.map(lambda image, label: (fn(image, 299, 299), label))
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Callable

from kslim.preprocess import cifarnet, inception, lenet, ssd_vgg, vgg

__all__ = ["get_preprocessing", "list_preprocessing", "preprocessing_family"]

_FAMILIES: dict[str, ModuleType] = {
    "cifarnet": cifarnet,
    "inception": inception,
    "lenet": lenet,
    "ssd_vgg": ssd_vgg,
    "vgg": vgg,
}

# slim's preprocessing_fn_map (newest factory, with the MobileNet v3 / EdgeTPU entries).
_SLIM_NAMES = {
    "cifarnet": "cifarnet",
    "inception": "inception",
    "inception_v1": "inception",
    "inception_v2": "inception",
    "inception_v3": "inception",
    "inception_v4": "inception",
    "inception_resnet_v2": "inception",
    "lenet": "lenet",
    "mobilenet_v1": "inception",
    "mobilenet_v2": "inception",
    "mobilenet_v2_035": "inception",
    "mobilenet_v2_140": "inception",
    "mobilenet_v3_small": "inception",
    "mobilenet_v3_large": "inception",
    "mobilenet_v3_small_minimalistic": "inception",
    "mobilenet_v3_large_minimalistic": "inception",
    "mobilenet_edgetpu": "inception",
    "mobilenet_edgetpu_075": "inception",
    "nasnet_mobile": "inception",
    "nasnet_large": "inception",
    "pnasnet_mobile": "inception",
    "pnasnet_large": "inception",
    "resnet_v1_50": "vgg",
    "resnet_v1_101": "vgg",
    "resnet_v1_152": "vgg",
    "resnet_v1_200": "vgg",
    "resnet_v2_50": "vgg",
    "resnet_v2_101": "vgg",
    "resnet_v2_152": "vgg",
    "resnet_v2_200": "vgg",
    "vgg": "vgg",
    "vgg_a": "vgg",
    "vgg_16": "vgg",
    "vgg_19": "vgg",
}

# Nets of slim's nets_factory that its preprocessing map forgets (train_image_classifier
# fails on them without --preprocessing_name). Their zoo checkpoints were trained with
# these families (mobilenet_v1/README.md, nasnet/README.md).
_KSLIM_NAMES = {
    "mobilenet_v1_075": "inception",
    "mobilenet_v1_050": "inception",
    "mobilenet_v1_025": "inception",
    "nasnet_cifar": "cifarnet",
    # SSD-Tensorflow's preprocessing_factory: boxes in, boxes out (another signature).
    "ssd_vgg": "ssd_vgg",
    "ssd_300_vgg": "ssd_vgg",
    "ssd_512_vgg": "ssd_vgg",
}

_NAMES = {**_SLIM_NAMES, **_KSLIM_NAMES}


def list_preprocessing() -> list[str]:
    """Every name `get_preprocessing` accepts, sorted."""
    return sorted(_NAMES)


def preprocessing_family(name: str) -> str:
    """The family (`vgg`, `inception`, `lenet`, `cifarnet`) that `name` maps to.

    Raises:
        ValueError: if `name` is not a known preprocessing or net name.
    """
    try:
        return _NAMES[name]
    except KeyError:
        raise ValueError(
            f"Preprocessing name [{name}] was not recognized. Valid names: "
            f"{', '.join(list_preprocessing())}"
        ) from None


def get_preprocessing(name: str, is_training: bool = False, use_grayscale: bool = False) -> Callable:
    """Returns `preprocessing_fn(image, output_height, output_width, **kwargs)`.

    Args:
        name: a family name or a slim net name (`"vgg_16"`, `"inception_v3"`, ...).
        is_training: training-time augmentation instead of the eval transform.
        use_grayscale: convert images to one channel (slim's `--use_grayscale`).

    Returns:
        A function of one 3-D image tensor and the output size, usable inside
        `tf.data.Dataset.map`. Its `jpeg_fn` attribute, when not None, does the same on
        JPEG bytes and decodes only what it keeps (inception training). Extra keyword arguments go to the family's
        `preprocess_image` (inception: `bbox`, `fast_mode`, `crop_image`; vgg:
        `resize_side_min`, `resize_side_max`); `seed=` (a `[2]` int tensor) makes the
        training augmentations reproducible.

    Raises:
        ValueError: if `name` is not recognized; the message lists the valid names.
    """
    family = preprocessing_family(name)
    module = _FAMILIES[family]
    if family == "ssd_vgg":
        return _ssd_preprocessing(is_training, use_grayscale)

    @functools.wraps(module.preprocess_image)
    def preprocessing_fn(image, output_height, output_width, **kwargs):
        return module.preprocess_image(
            image,
            output_height,
            output_width,
            is_training=is_training,
            use_grayscale=use_grayscale,
            **kwargs,
        )

    preprocessing_fn.family = family
    preprocessing_fn.is_training = is_training
    preprocessing_fn.jpeg_fn = None
    if family == "inception" and is_training:
        # Same transform on JPEG bytes, decoding only the crop window (input_pipeline
        # uses it for JPEG records).
        def jpeg_fn(encoded, output_height, output_width, add_image_summaries=True, **kwargs):
            del add_image_summaries
            return inception.preprocess_jpeg_for_train(
                encoded, output_height, output_width, use_grayscale=use_grayscale, **kwargs
            )

        preprocessing_fn.jpeg_fn = jpeg_fn
    return preprocessing_fn


def _ssd_preprocessing(is_training: bool, use_grayscale: bool) -> Callable:
    """SSD-Tensorflow's `ssd_vgg` preprocessing: `fn(image, labels, bboxes, out_shape=(300, 300), **kw)`.

    Eval returns `(image, labels, bboxes, bbox_img)` (keywords `resize`, `difficults`,
    `data_format`); train returns `(image, labels, bboxes)` (keywords `seed`,
    `fast_mode`, `data_format`). See `kslim.preprocess.ssd_vgg`.
    """
    if use_grayscale:
        raise ValueError("ssd_vgg preprocessing has no grayscale mode (SSD nets take RGB images)")
    module = ssd_vgg.preprocess_for_train if is_training else ssd_vgg.preprocess_for_eval

    @functools.wraps(module)
    def preprocessing_fn(image, labels, bboxes, out_shape=ssd_vgg.EVAL_SIZE, **kwargs):
        return module(image, labels, bboxes, out_shape, **kwargs)

    preprocessing_fn.family = "ssd_vgg"
    preprocessing_fn.is_training = is_training
    preprocessing_fn.jpeg_fn = None
    return preprocessing_fn
