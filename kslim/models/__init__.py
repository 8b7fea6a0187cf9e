"""kslim's nets: slim's nets_factory names as Keras models whose weight paths are the
slim variable names.

    model = kslim.models.create_model("vgg_16", num_classes=1000)
    model = kslim.models.vgg16(weights="slim")        # every name and alias is a factory
    kslim.models.list_models("vgg*")
    kslim.models.get_spec("vgg_16").image_size
"""

import importlib

from kslim.models._base import SlimModel
from kslim.models._registry import (ModelSpec, create_model, factories, get_spec,
                                    list_models, load_weights, register_model)

# One module per net family; importing it registers its names.
_FAMILIES = (
    "alexnet",
    "cifarnet",
    "i3d",
    "inception",
    "inception_resnet_v2",
    "inception_v4",
    "lenet",
    "mobilenet_v1",
    "mobilenet_v2",
    "mobilenet_v3",
    "nasnet",
    "overfeat",
    "pnasnet",
    "resnet",
    "s3dg",
    "ssd_small",
    "ssd_vgg",
    "vgg",
)
for _family in _FAMILIES:
    importlib.import_module(f"kslim.models.{_family}")

# Each registered name and alias becomes a factory function of this package (this
# also shadows the family modules named like a net, e.g. `lenet`).
globals().update(factories())

__all__ = ["ModelSpec", "SlimModel", "create_model", "get_spec", "list_models",
           "load_weights", "register_model", *sorted(factories())]
