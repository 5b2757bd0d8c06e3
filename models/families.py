"""The efficient-ViT families edgekit supports, as a registry over timm's model names.

Only names and patterns live here (no timm import), so `edgekit models` and the test matrix can
be built from the registry without loading torch.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from edgekit.registry import Registry


@dataclass(frozen=True)
class Family:
    name: str
    patterns: tuple[str, ...]
    smallest: str  # the member the test suite exports on every run
    deploy_hooks: str  # which reparameterization the family gets (for `edgekit models`)
    # Live random weights re-estimate BatchNorm statistics from data (live_weights.py): for
    # plain conv-BN-ReLU chains without a normalising residual path, where perturbed running
    # statistics that do not match the inputs compound (MobileOne-S0: logits 4.7e16).
    live_bn_from_data: bool = False


FAMILIES: Registry[Family] = Registry("family")

for _family in (
    Family("efficientformer", ("efficientformer_l*",), "efficientformer_l1",
           "edgekit: conv-BN fold, LayerScale fold, attention-bias bake"),
    Family("efficientformerv2", ("efficientformerv2_*",), "efficientformerv2_s0",
           "edgekit: conv-BN fold, LayerScale fold, attention-bias bake"),
    Family("levit", ("levit_*",), "levit_128s",
           "timm fuse(); edgekit: attention-bias bake"),
    Family("levit_conv", ("levit_conv_*",), "levit_conv_128s",
           "timm fuse(); edgekit: attention-bias bake"),
    Family("fastvit", ("fastvit_*",), "fastvit_t8", "timm reparameterize(); edgekit: conv-BN fold"),
    Family("mobilevit", ("mobilevit_*",), "mobilevit_xxs", "edgekit: conv-BN fold"),
    Family("mobilevitv2", ("mobilevitv2_*",), "mobilevitv2_050", "edgekit: conv-BN fold"),
    Family("efficientvit_msra", ("efficientvit_m*",), "efficientvit_m0",
           "timm fuse(); edgekit: attention-bias bake"),
    Family("efficientvit_mit", ("efficientvit_b*", "efficientvit_l*"), "efficientvit_b0",
           "edgekit: conv-BN fold"),
    Family("repvit", ("repvit_*",), "repvit_m0_9", "timm fuse()"),
    Family("mobileone", ("mobileone_*",), "mobileone_s0", "timm reparameterize()",
           live_bn_from_data=True),
    Family("nextvit", ("nextvit_*",), "nextvit_small",
           "timm reparameterize(); edgekit: conv-BN fold"),
):
    FAMILIES.register(_family.name, _family)


def family_of(model_name: str) -> Family | None:
    """The family whose patterns match a timm name (levit_conv_* before levit_*)."""
    matches = [FAMILIES.get(n) for n in FAMILIES.list()
               if any(fnmatch.fnmatch(model_name, p) for p in FAMILIES.get(n).patterns)]
    if not matches:
        return None
    return max(matches, key=lambda f: max(len(p) for p in f.patterns
                                          if fnmatch.fnmatch(model_name, p)))


def supported_models() -> list[str]:
    """Every timm model name of the supported families (imports timm)."""
    import timm

    names: set[str] = set()
    for fam in FAMILIES.list():
        for pattern in FAMILIES.get(fam).patterns:
            names.update(timm.list_models(pattern))
    return sorted(names)
