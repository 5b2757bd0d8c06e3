"""Model sources: timm families, `module:function` factories, live random weights."""

from edgekit.models.families import FAMILIES, Family, family_of, supported_models

__all__ = ["FAMILIES", "Family", "family_of", "supported_models"]
