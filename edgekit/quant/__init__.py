"""int8 post-training quantization: one QuantConfig, each target's own quantizer (targets.py)."""
