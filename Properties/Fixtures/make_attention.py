"""Writes attention.safetensors: PyTorch's scaled dot-product attention, forward and backward, for
AttentionProperties.Matches_PyTorch.

torch 1.13 (Debian's python3-torch) has no torch.nn.functional.scaled_dot_product_attention (it
arrived in 2.0), so the reference is its documented math in explicit float64 ops:

    s = q @ k^T * scale + bias,  s[masked] = -inf,  y = softmax(s, -1) @ v
    masked: is_causal and j > i (torch.ones(Lq, Lk).tril(0), top-left aligned), and key padding
    (j >= lengths[b], or mask[b, j] == 0: PyTorch's boolean attn_mask broadcast as (B, 1, 1, Lk))

with dq, dk, dv (and dbias, for the cases with a bias) from autograd of sum(y * dout). Inputs are drawn in float32 (so the C# side uploads
them exactly), then widened; outputs are F64. Every case keeps at least one key per row (PyTorch
gives NaN for a fully masked row, IlgpuTrain zeros).

Tensors, per case NAME: NAME.q (B, H, Lq, D), NAME.k (B, H, Lk, D), NAME.v (B, H, Lk, Dv),
NAME.dout (B, H, Lq, Dv), all F32; optional NAME.bias F32, NAME.lengths I32 (B), NAME.mask I32 (B, Lk);
NAME.y, NAME.dq, NAME.dk, NAME.dv (and NAME.dbias with a bias) F64. Metadata: NAME.causal "0"/"1", NAME.scale "" (1/sqrt(D)) or a number.

    /usr/bin/python3 make_attention.py        (in this folder; rewrites attention.safetensors)
"""
import math

import torch

from make_resnet18 import save_safetensors
from make_resnet_formula import add_metadata

CASES = [
    # name, B, H, Lq, Lk, D, Dv, causal, scale, bias shape, padding
    ("plain", 2, 2, 5, 5, 4, 3, False, None, None, None),
    ("causal", 1, 2, 5, 7, 4, 4, True, None, None, None),
    ("lengths", 2, 3, 4, 6, 5, 3, False, 0.3, None, "lengths"),
    ("mask_bias", 2, 2, 6, 5, 3, 2, True, None, (2, 1, 6, 5), "mask"),
    ("bias_heads", 1, 3, 4, 9, 8, 5, False, None, (3, 4, 9), None),
]


def attention(q, k, v, causal, scale, bias, lengths, mask):
    b, h, lq, d = q.shape
    lk = k.shape[2]
    s = q @ k.transpose(-2, -1) * (1.0 / math.sqrt(d) if scale is None else scale)
    if bias is not None:
        s = s + bias
    keep = torch.ones(b, h, lq, lk, dtype=torch.bool)
    if causal:
        keep &= torch.ones(lq, lk, dtype=torch.bool).tril(0)
    if lengths is not None:
        keep &= (torch.arange(lk)[None, :] < lengths[:, None]).view(b, 1, 1, lk)
    if mask is not None:
        keep &= (mask != 0).view(b, 1, 1, lk)
    s = s.masked_fill(~keep, float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def main():
    gen = torch.Generator().manual_seed(2024)
    tensors, metadata = {}, {}
    for name, b, h, lq, lk, d, dv, causal, scale, bias_shape, padding in CASES:
        def draw(*shape):
            return (torch.rand(*shape, generator=gen, dtype=torch.float32) * 2 - 1)

        q, k, v, dout = draw(b, h, lq, d), draw(b, h, lk, d), draw(b, h, lk, dv), draw(b, h, lq, dv)
        bias = draw(*bias_shape) if bias_shape is not None else None
        lengths = mask = None
        if padding == "lengths":
            lengths = torch.tensor([3, lk][:b], dtype=torch.int32)
        elif padding == "mask":
            mask = (torch.rand(b, lk, generator=gen) < 0.6).to(torch.int32)
            mask[:, 0] = 1  # causal row 0 sees key 0 only: keep it, so no row is empty
        q64, k64, v64 = (t.double().requires_grad_(True) for t in (q, k, v))
        bias64 = None if bias is None else bias.double().requires_grad_(True)
        y = attention(q64, k64, v64, causal, scale, bias64, lengths, mask)
        assert torch.isfinite(y).all(), name
        (y * dout.double()).sum().backward()
        tensors.update({f"{name}.q": q, f"{name}.k": k, f"{name}.v": v, f"{name}.dout": dout})
        if bias is not None:
            tensors[f"{name}.bias"] = bias
            tensors[f"{name}.dbias"] = bias64.grad
        if lengths is not None:
            tensors[f"{name}.lengths"] = lengths
        if mask is not None:
            tensors[f"{name}.mask"] = mask
        tensors.update({f"{name}.y": y.detach(), f"{name}.dq": q64.grad, f"{name}.dk": k64.grad, f"{name}.dv": v64.grad})
        metadata[f"{name}.causal"] = "1" if causal else "0"
        metadata[f"{name}.scale"] = "" if scale is None else repr(scale)
    save_safetensors("attention.safetensors", tensors)
    add_metadata("attention.safetensors", metadata)


if __name__ == "__main__":
    main()
