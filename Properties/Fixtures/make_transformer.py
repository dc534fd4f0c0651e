#!/usr/bin/env python3
"""Writes transformer_io.safetensors for TransformerLayersProperties.

Run from this folder with Debian's python3-torch (1.13): /usr/bin/python3 make_transformer.py
nn.MultiheadAttention and nn.TransformerEncoderLayer (batch_first, dropout 0, eval mode) on fixed inputs, in
float64 (the layers are converted with .double(); their weights are stored as the float32 values they hold, so
IlgpuTrain loads exactly the weights PyTorch ran). For each case the file holds the layer's state_dict under
"<case>/<key>", the input "<case>/x" (float32), the output "<case>/y" and, for an upstream gradient "<case>/dy",
the gradients "<case>/dx" and "<case>/grad/<key>" of sum(y * dy) (float64).

Cases:
  mha          nn.MultiheadAttention(16, 4, batch_first=True)
  mha_causal   the same with a causal mask (attn_mask = triu(-inf, 1), as is_causal)
  enc_post     nn.TransformerEncoderLayer(16, 4, 32, dropout=0, activation="gelu", batch_first=True, norm_first=False)
  enc_pre      the same with norm_first=True and a causal mask (a decoder-only block)
"""
import sys

import torch
import torch.nn as nn

sys.path.insert(0, ".")
from make_resnet18 import save_safetensors  # noqa: E402


def causal(t):
    return torch.triu(torch.full((t, t), float("-inf"), dtype=torch.float64), diagonal=1)


def main():
    torch.manual_seed(0)
    out = {}
    n, t, e = 2, 5, 16
    cases = {
        "mha": (nn.MultiheadAttention(e, 4, batch_first=True), False),
        "mha_causal": (nn.MultiheadAttention(e, 4, batch_first=True), True),
        "enc_post": (nn.TransformerEncoderLayer(e, 4, 32, dropout=0.0, activation="gelu", batch_first=True, norm_first=False), False),
        "enc_pre": (nn.TransformerEncoderLayer(e, 4, 32, dropout=0.0, activation="gelu", batch_first=True, norm_first=True), True),
    }
    for name, (layer, is_causal) in cases.items():
        with torch.no_grad():
            for p in layer.parameters():
                p.uniform_(-0.5, 0.5)  # non-trivial biases and norms
        state = {k: v.float().clone() for k, v in layer.state_dict().items()}
        layer = layer.double().eval()
        x32 = torch.randn(n, t, e)
        x = x32.double().requires_grad_(True)
        mask = causal(t) if is_causal else None
        if isinstance(layer, nn.MultiheadAttention):
            y, _ = layer(x, x, x, attn_mask=mask, need_weights=False)
        else:
            y = layer(x, src_mask=mask)
        dy = torch.randn(n, t, e, dtype=torch.float64)
        grads = torch.autograd.grad((y * dy).sum(), [x] + list(layer.parameters()))
        out[f"{name}/x"] = x32
        out[f"{name}/y"] = y.detach()
        out[f"{name}/dy"] = dy
        out[f"{name}/dx"] = grads[0]
        for (k, _), g in zip(layer.named_parameters(), grads[1:]):
            out[f"{name}/grad/{k}"] = g
        for k, v in state.items():
            out[f"{name}/{k}"] = v
    save_safetensors("transformer_io.safetensors", out)


if __name__ == "__main__":
    main()
