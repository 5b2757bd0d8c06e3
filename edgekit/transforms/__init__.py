"""Deploy transforms: structural reparameterization, folding and export-friendly rewrites.

Every pass is a `Pass` (`name`, `__call__(model) -> changed count`) in the PASSES registry; the
DeployPipeline runs them in order and checks each for equivalence on fixed inputs.
"""

from edgekit.transforms.base import DEFAULT_PASSES, PASSES, DeployPipeline, Pass

__all__ = ["DEFAULT_PASSES", "PASSES", "DeployPipeline", "Pass"]
