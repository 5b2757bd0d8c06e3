"""Split a large-kernel depthwise conv into column bands of at most 25 taps (XNNPACK targets).

XNNPACK (the CPU engine of LiteRT and ExecuTorch) runs depthwise convs of up to 25 taps (5×5)
in its fast single-pass kernels; beyond that it falls off a cliff. Measured here (64×64×48,
2 threads): 5×5 0.09 ms, 7×7 2.66 ms fp32 and 17.6 ms int8 in LiteRT (TFLite's own builtin
kernel: 0.58 / 0.90 ms); ExecuTorch 7×7 5.2 ms. FastViT's 7×7 ConvMlp / RepCPE / stem convs and
RepViT-style large kernels hit it, which made XNNPACK fp32 FastViT-T8 2.5× slower than ONNX
Runtime and its int8 4× slower than its fp32.

The rewrite is exact. Band b takes kernel columns j_b … j_b + w_b − 1 (K·w_b ≤ 25 taps) and
runs as its own conv with the original row padding and a column padding q_b large enough that
the output it needs lies inside its own output; that window is then sliced out:

    conv_K×K(x)[…, x] = Σ_b conv_K×w_b(x; pad q_b)[…, x + o_b / s] + bias,
    o_b = j_b − p + q_b ≥ 0, a multiple of the stride s.

No explicit PAD op and no slice of the input: litert-torch keeps a standalone PAD in NCHW
(transposes around it) and ExecuTorch's XNNPACK rejects a quantized one. For K = 7: bands of 3,
3 and 1 columns (21 + 21 + 7 taps), ~7× faster in LiteRT fp32 and ExecuTorch at the shape
above. It runs only for formats whose runtime is XNNPACK (FORMAT_PASSES in transforms/base.py);
ONNX Runtime and Core ML keep the single conv.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgekit.transforms.graph import replace_submodule

# The largest depthwise kernel (in taps) XNNPACK runs in its fast single-pass path.
MAX_FAST_TAPS = 25


def column_bands(kernel_h: int, kernel_w: int, max_taps: int = MAX_FAST_TAPS
                 ) -> list[tuple[int, int]]:
    """(first column, width) of each band, every band ≤ max_taps taps."""
    width = max(1, max_taps // kernel_h)
    return [(j, min(width, kernel_w - j)) for j in range(0, kernel_w, width)]


def band_padding(first: int, width: int, kernel: int, pad: int, stride: int) -> int:
    """Smallest column padding q ≥ 0 for a band (columns first … first+width−1) of a kernel
    of `kernel` columns and padding `pad` such that the band's output window starts at offset
    o = first − pad + q ≥ 0 with o ≡ 0 (mod stride) and ends inside the band's own output
    (its last input column, shifted by q − pad, must not pass the right padding)."""
    q = max(pad - first, pad - (kernel - first - width), 0)
    while (first - pad + q) % stride:
        q += 1
    return q


class BandedDepthwiseConv2d(nn.Module):
    """A depthwise conv computed as the sum of column-band convs (see the module doc)."""

    def __init__(self, conv: nn.Conv2d, max_taps: int = MAX_FAST_TAPS) -> None:
        super().__init__()
        kernel_h, kernel_w = conv.kernel_size
        pad_h, pad_w = (int(p) for p in conv.padding)  # a tuple: is_large_depthwise
        self.kernel_w, self.pad_w = kernel_w, pad_w
        self.stride = tuple(conv.stride)
        self.groups = conv.groups
        self.bands = column_bands(kernel_h, kernel_w, max_taps)
        self.band_pads = [(pad_h, band_padding(j, w, kernel_w, pad_w, self.stride[1]))
                          for j, w in self.bands]
        self.weights = nn.ParameterList(
            nn.Parameter(conv.weight.detach()[..., j:j + w].clone(), requires_grad=False)
            for j, w in self.bands)
        # the bias rides on the first band's conv (one op fewer than a broadcast add)
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone(),
                                                               requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stride_w = self.stride[1]
        width_out = (x.shape[-1] + 2 * self.pad_w - self.kernel_w) // stride_w + 1
        out: torch.Tensor | None = None
        for (first, _), weight, padding in zip(self.bands, self.weights, self.band_pads,
                                               strict=True):
            y = F.conv2d(x, weight, self.bias if out is None else None, self.stride, padding,
                         1, self.groups)
            offset = (first - self.pad_w + padding[1]) // stride_w
            if offset or y.shape[-1] != width_out:
                y = y[..., offset:offset + width_out]
            out = y if out is None else torch.add(out, y)
        assert out is not None
        return out


def is_large_depthwise(module: nn.Module, max_taps: int = MAX_FAST_TAPS) -> bool:
    """A plain depthwise nn.Conv2d (groups = input channels, any depth multiplier, zero
    padding, no dilation) with more taps than XNNPACK's fast path. Subclasses (timm's
    Conv2dSame…) are left alone."""
    if type(module) is not nn.Conv2d:
        return False
    kh, kw = module.kernel_size
    return (module.groups == module.in_channels > 1
            and module.out_channels % module.groups == 0 and kh * kw > max_taps
            and module.padding_mode == "zeros"
            and isinstance(module.padding, tuple) and tuple(module.dilation) == (1, 1))


class SplitLargeDepthwise:
    name = "split_large_depthwise"

    def __call__(self, model: nn.Module, example: Any) -> int:
        targets = [fqn for fqn, m in model.named_modules() if fqn and is_large_depthwise(m)]
        for fqn in targets:
            conv = model.get_submodule(fqn)
            assert isinstance(conv, nn.Conv2d)
            replace_submodule(model, fqn, BandedDepthwiseConv2d(conv))
        return len(targets)
