"""edgekit: efficient vision transformers from PyTorch to phones and boards.

Importing edgekit is cheap: exporters, runtimes and models are registered lazily.
"""

__version__ = "0.1.0"
