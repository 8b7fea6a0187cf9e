"""PNASNet-5 (Mobile, Large) as research/slim's `nets/nasnet/pnasnet.py`.

Liu et al., "Progressive Neural Architecture Search", 2017
(https://arxiv.org/abs/1712.00559). One searched cell (`_nasnet_utils.PNASNET_5`),
used for the two ImageNet stem cells, the normal cells and, with stride 2, the
reductions at 1/3 and 2/3 of the depth (there are no separate reduction cells: the
cells are `cell_0` ... `cell_{num_cells-1}`).

The variables have no top-level scope, as in slim (`cell_stem_0/...`, `cell_3/...`,
`aux_7/aux_logits/...`, `final_layer/FC/...`); the auxiliary head is handled as in
`kslim.models.nasnet`.
"""

from __future__ import annotations

import keras

from kslim.models._nasnet_utils import PNASNET_5, NASNetBase, calc_reduction_layers
from kslim.models._registry import register_model

__all__ = ["PNASNet", "pnasnet_mobile", "pnasnet_large"]

# slim's pnasnet mobile_imagenet_config / large_imagenet_config.
CONFIGS = {
    "mobile": dict(stem_multiplier=1.0, dense_dropout_keep_prob=0.5, num_cells=9,
                   filter_scaling_rate=2.0, num_conv_filters=54, drop_path_keep_prob=1.0,
                   use_aux_head=True, num_reduction_layers=2,
                   skip_reduction_layer_input=True, total_training_steps=250000,
                   use_bounded_activation=False),
    "large": dict(stem_multiplier=3.0, dense_dropout_keep_prob=0.5, num_cells=12,
                  filter_scaling_rate=2.0, num_conv_filters=216, drop_path_keep_prob=0.6,
                  use_aux_head=True, num_reduction_layers=2,
                  skip_reduction_layer_input=True, total_training_steps=250000,
                  use_bounded_activation=False),
}
# pnasnet_{mobile,large}_arg_scope: (weight_decay, batch_norm_decay, batch_norm_epsilon).
ARG_SCOPES = {"mobile": (4e-5, 0.9997, 1e-3), "large": (4e-5, 0.9997, 1e-3)}
STEMS = {"mobile": "imagenet", "large": "imagenet"}


@keras.saving.register_keras_serializable(package="kslim")
class PNASNet(NASNetBase):
    """Slim's PNASNet-5 (`pnasnet_mobile`, `pnasnet_large`).

    Every hyper-parameter defaults (None) to the variant's slim config:

    | variant | cells | filters | stem mult. | drop path | dense keep | skip red. input | steps  |
    |---------|-------|---------|------------|-----------|------------|-----------------|--------|
    | mobile  | 9     | 54      | 1.0        | 1.0       | 0.5        | yes             | 250000 |
    | large   | 12    | 216     | 3.0        | 0.6       | 0.5        | yes             | 250000 |

    Args:
        variant: 'mobile' or 'large'.
        num_classes, num_cells, stem_multiplier, filter_scaling_rate,
        num_conv_filters, num_reduction_layers, drop_path_keep_prob,
        total_training_steps, use_aux_head, dense_dropout_keep_prob
        (`dropout_keep_prob`), use_bounded_activation, data_format, final_endpoint,
        batch_norm_decay, batch_norm_epsilon, name: as `kslim.models.nasnet.NASNet`.
        skip_reduction_layer_input: a strided cell takes `cell_outputs[-2]` as its
            previous layer; without it, the previous layer of the cell before it
            (slim's loop keeps the last value; a first cell that reduces then has
            none, which is an error).
        weight_decay: slim's L2 on every `weights`/`pointwise_weights` (0 as
            nets_factory; the arg scopes use 4e-5).

    Example:
        >>> model = kslim.models.create_model("pnasnet_large")  # 1001 classes, 331x331
        >>> logits = model(images)
    """

    slim_prefix = "pnasnet"
    CONFIGS = CONFIGS
    ARG_SCOPES = ARG_SCOPES
    STEMS = STEMS

    def __init__(self, variant: str = "mobile", num_classes: int | None = 1001, **kwargs):
        super().__init__(variant, num_classes, **kwargs)

    @property
    def total_num_cells(self) -> int:
        # PNASNet has no separate reduction cells: the cells plus the 2 stem cells.
        return self.num_cells + 2

    def _plan_cells(self) -> None:
        """slim's `_build_pnasnet_base` cell loop."""
        if not self._imagenet_stem(PNASNET_5):
            return
        reductions = calc_reduction_layers(self.num_cells, self.num_reduction_layers)
        aux_cells = self._aux_cells()
        scaling = 1.0
        true_cell_num = 2
        prev = None
        for cell_num in range(self.num_cells):
            reduce = cell_num in reductions
            if reduce:
                scaling *= self.filter_scaling_rate
            if self.skip_reduction_layer_input or not reduce:
                prev = len(self._info) - 2
            elif prev is None:
                raise ValueError(
                    f"{self.slim_name}: cell_{cell_num} is a reduction with "
                    "skip_reduction_layer_input=False and no earlier cell to take its "
                    "previous layer from (slim fails here too); use more cells or "
                    "skip_reduction_layer_input=True")
            if not self._add_cell(f"cell_{cell_num}", PNASNET_5, scaling, 2 if reduce else 1,
                                  prev, true_cell_num, f"Cell_{cell_num}",
                                  aux=cell_num in aux_cells):
                return
            true_cell_num += 1


pnasnet_mobile = register_model("pnasnet_mobile", PNASNet, image_size=224, num_classes=1001,
                                preprocessing="pnasnet_mobile", scope="", variant="mobile")
pnasnet_large = register_model("pnasnet_large", PNASNet, image_size=331, num_classes=1001,
                               preprocessing="pnasnet_large", scope="", variant="large")
