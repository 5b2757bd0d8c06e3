"""Integer-only inference in the I-ViT sense (`--quant int-only`); reference.py defines the
arithmetic."""
