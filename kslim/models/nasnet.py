"""NASNet-A (CIFAR, Mobile, Large) as research/slim's `nets/nasnet/nasnet.py`.

Zoph, Vasudevan, Shlens & Le, "Learning Transferable Architectures for Scalable Image
Recognition", 2017 (https://arxiv.org/abs/1707.07012). Normal and reduction cells
found by architecture search (`_nasnet_utils.NASNET_A_NORMAL`/`NASNET_A_REDUCTION`),
stacked as `num_cells` normal cells with a reduction cell before the cells at 1/3 and
2/3 of the depth, behind a CIFAR stem (one 3x3 conv) or an ImageNet stem (a stride-2
conv and two reduction cells).

As in slim, the variables have no top-level scope: `cell_stem_0/...`, `cell_5/...`,
`reduction_cell_0/...`, `aux_7/aux_logits/...`, `final_layer/FC/...`. The auxiliary
head exists only in slim's training graph; here it is built with the model (so
training and checkpoints carry it, as slim's training does) and runs only in training
(`use_aux_head=False` gives exactly slim's eval-graph variables; a checkpoint saved
from slim's eval graph has no aux head, so load it with `use_aux_head=False` or
`compat.restore(..., ignore_missing=True)`).
"""

from __future__ import annotations

import keras

from kslim.models._nasnet_utils import (NASNET_A_NORMAL, NASNET_A_REDUCTION, NASNetBase,
                                        calc_reduction_layers)
from kslim.models._registry import register_model

__all__ = ["NASNet", "nasnet_cifar", "nasnet_mobile", "nasnet_large"]

# slim's cifar_config / mobile_imagenet_config / large_imagenet_config.
CONFIGS = {
    "cifar": dict(stem_multiplier=3.0, drop_path_keep_prob=0.6, num_cells=18,
                  use_aux_head=True, num_conv_filters=32, dense_dropout_keep_prob=1.0,
                  filter_scaling_rate=2.0, num_reduction_layers=2,
                  skip_reduction_layer_input=False, total_training_steps=937500,
                  use_bounded_activation=False),
    "mobile": dict(stem_multiplier=1.0, dense_dropout_keep_prob=0.5, num_cells=12,
                   filter_scaling_rate=2.0, drop_path_keep_prob=1.0, num_conv_filters=44,
                   use_aux_head=True, num_reduction_layers=2,
                   skip_reduction_layer_input=False, total_training_steps=250000,
                   use_bounded_activation=False),
    "large": dict(stem_multiplier=3.0, dense_dropout_keep_prob=0.5, num_cells=18,
                  filter_scaling_rate=2.0, num_conv_filters=168, drop_path_keep_prob=0.7,
                  use_aux_head=True, num_reduction_layers=2,
                  skip_reduction_layer_input=True, total_training_steps=250000,
                  use_bounded_activation=False),
}
# nasnet_{cifar,mobile,large}_arg_scope: (weight_decay, batch_norm_decay, batch_norm_epsilon).
ARG_SCOPES = {
    "cifar": (5e-4, 0.9, 1e-5),
    "mobile": (4e-5, 0.9997, 1e-3),
    "large": (5e-5, 0.9997, 1e-3),
}
STEMS = {"cifar": "cifar", "mobile": "imagenet", "large": "imagenet"}


@keras.saving.register_keras_serializable(package="kslim")
class NASNet(NASNetBase):
    """Slim's NASNet-A (`nasnet_cifar`, `nasnet_mobile`, `nasnet_large`).

    Every hyper-parameter defaults (None) to the variant's slim config:

    | variant | cells | filters | stem mult. | drop path | dense keep | skip red. input | steps  |
    |---------|-------|---------|------------|-----------|------------|-----------------|--------|
    | cifar   | 18    | 32      | 3.0        | 0.6       | 1.0        | no              | 937500 |
    | mobile  | 12    | 44      | 1.0        | 1.0       | 0.5        | no              | 250000 |
    | large   | 18    | 168     | 3.0        | 0.7       | 0.5        | yes             | 250000 |

    Args:
        variant: 'cifar' (CIFAR stem), 'mobile' or 'large' (ImageNet stem).
        num_classes: 0/None returns `global_pool` (slim's pre-logits features).
        num_cells: normal cells (`reduction_cell_i` go before the cells at
            `calc_reduction_layers`).
        stem_multiplier: scales the stem conv's filters.
        filter_scaling_rate: filter growth at each reduction.
        num_conv_filters: filters of the first normal cells.
        num_reduction_layers: reduction cells.
        drop_path_keep_prob: drop path's keep probability at the last cell at the
            end of the schedule (1.0: no drop path); training only, scheduled by cell
            depth and by `step / total_training_steps` (see `set_drop_path_step`).
        total_training_steps: the steps over which drop path ramps up.
        use_aux_head: build the auxiliary head (`aux_{i}`, after the cell before the
            second reduction); it runs in training, where `call` returns
            `{"logits", "aux_logits"}` and `compute_loss` adds 0.4 x its loss.
        skip_reduction_layer_input: the normal cell after a reduction takes the
            output from before the reduction's input as its previous layer.
        dense_dropout_keep_prob: keep probability of `final_layer/dropout`
            (`dropout_keep_prob` is accepted as the name other kslim nets use).
        use_bounded_activation: relu6 everywhere plus clipping to [-6, 6]
            (slim's option for quantized inference).
        data_format: 'NHWC' only.
        final_endpoint: end the net at this end point (`Stem`, `Cell_3`,
            `Reduction_Cell_0`, `global_pool`, ...); nothing after it is built.
            As slim, ending at `Logits`/`Predictions` returns the dropped-out
            features, not the logits.
        weight_decay: slim's L2 on every `weights`/`pointwise_weights` (0 as
            nets_factory; the arg scopes use 5e-4 cifar, 4e-5 mobile, 5e-5 large).
        batch_norm_decay, batch_norm_epsilon: default the variant's arg scope
            (cifar 0.9 / 1e-5, mobile and large 0.9997 / 1e-3).
        name: the model name (not part of the slim variable names).

    Example:
        >>> model = kslim.models.create_model("nasnet_mobile")  # 1001 classes, 224x224
        >>> logits = model(images)                              # eval graph
        >>> out = model(images, training=True)                  # {"logits", "aux_logits"}
    """

    slim_prefix = "nasnet"
    CONFIGS = CONFIGS
    ARG_SCOPES = ARG_SCOPES
    STEMS = STEMS

    def __init__(self, variant: str = "mobile", num_classes: int | None = 1001, **kwargs):
        super().__init__(variant, num_classes, **kwargs)

    @property
    def total_num_cells(self) -> int:
        # The normal cells, the 2 reduction cells (slim counts 2 whatever
        # num_reduction_layers is) and, for ImageNet, the 2 stem cells.
        return self.num_cells + 2 + (2 if self.stem_type == "imagenet" else 0)

    def _plan_cells(self) -> None:
        """slim's `_build_nasnet_base` cell loop."""
        if self.stem_type == "imagenet" and not self._imagenet_stem(NASNET_A_REDUCTION):
            return
        reductions = calc_reduction_layers(self.num_cells, self.num_reduction_layers)
        aux_cells = self._aux_cells()
        scaling = 1.0
        true_cell_num = 2 if self.stem_type == "imagenet" else 0
        prev = None
        for cell_num in range(self.num_cells):
            if self.skip_reduction_layer_input:
                prev = len(self._info) - 2
            if cell_num in reductions:
                scaling *= self.filter_scaling_rate
                index = reductions.index(cell_num)
                if not self._add_cell(f"reduction_cell_{index}", NASNET_A_REDUCTION, scaling,
                                      2, len(self._info) - 2, true_cell_num,
                                      f"Reduction_Cell_{index}"):
                    return
                true_cell_num += 1
            if not self.skip_reduction_layer_input:
                prev = len(self._info) - 2
            if not self._add_cell(f"cell_{cell_num}", NASNET_A_NORMAL, scaling, 1, prev,
                                  true_cell_num, f"Cell_{cell_num}",
                                  aux=cell_num in aux_cells):
                return
            true_cell_num += 1


nasnet_cifar = register_model("nasnet_cifar", NASNet, image_size=32, num_classes=10,
                              preprocessing="cifarnet", scope="", variant="cifar")
nasnet_mobile = register_model("nasnet_mobile", NASNet, image_size=224, num_classes=1001,
                               preprocessing="nasnet_mobile", scope="", variant="mobile")
nasnet_large = register_model("nasnet_large", NASNet, image_size=331, num_classes=1001,
                              preprocessing="nasnet_large", scope="", variant="large")
