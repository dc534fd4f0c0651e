#!/usr/bin/env python3
"""Writes resnet_formula_io.safetensors: full-width ResNet-18 and ResNet-50 (torchvision's width 64,
1000 classes) on weights that a formula defines, so the fixture holds no weights.

Run from this folder with Debian's python3-torch (1.13): /usr/bin/python3 make_resnet_formula.py
The ResNets are those of make_resnet18.py (torchvision's definitions and module names) plus
torchvision's Bottleneck (ResNet v1.5: the stride sits on the 3x3 convolution, conv2).

The weights. For the k-th entry of model.state_dict() (k from 0, in state_dict order, buffers
included) and its element i (row-major):
    u     = ((i * 2654435761 + k * 40503 + 12345) mod 2**32) / 2**32          (exact in float64)
    value = float32(offset + scale * (u - 0.5))                              (float64 arithmetic)
with, per kind of entry (b computed in float64):
    conv weight (fan_in = in_channels * kh * kw)  offset 0, scale 2b, b = sqrt(6.0 / fan_in)
    fc.weight and fc.bias (fan_in = in_features) offset 0, scale 2b, b = 1.0 / sqrt(fan_in)
    BatchNorm weight                               offset 1, scale 1     ([0.5, 1.5])
    BatchNorm bias, running_mean                   offset 0, scale 0.4   ([-0.2, 0.2])
    BatchNorm running_var                          offset 1, scale 1     ([0.5, 1.5])
    num_batches_tracked                            left at 0 (eval mode does not read it)
ModelsTorchvisionProperties computes the same values in C# (the same float64 operations in the same
order, then one rounding to float32), so the weights agree bit for bit.

The output file (safetensors, written by make_resnet18.save_safetensors):
    input     (2, 3, 64, 64) F32: torch.randn with seed 0; exactly what both models get
    resnet18  (2, 1000) F64: the eval-mode forward of ResNet-18 in float64 (model.double())
    resnet50  (2, 1000) F64: the same for ResNet-50
    __metadata__ resnet18_keys, resnet50_keys: the state_dict keys in order, one per line (the k order);
                 resnet18_sha256, resnet50_sha256: SHA-256 of the float32 weights' bytes in that order,
                 so the test checks that its weights are these bit for bit

A second use checks that a file written by StateDict.Save loads into PyTorch:
    /usr/bin/python3 make_resnet_formula.py check FILE.safetensors resnet18|resnet50 [classes] [width]
reads FILE with the small reader below (no safetensors package needed), converts it to tensors and
calls model.load_state_dict(tensors) (strict), then prints the largest difference from the formula.
"""
import hashlib
import json
import math
import struct
import sys

import torch
import torch.nn as nn

from make_resnet18 import BasicBlock, ResNet, conv1x1, conv3x3, save_safetensors


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


def build(name, classes=1000, width=64):
    if name == "resnet18":
        return ResNet(BasicBlock, [2, 2, 2, 2], num_classes=classes, width=width)
    if name == "resnet50":
        return ResNet(Bottleneck, [3, 4, 6, 3], num_classes=classes, width=width)
    raise SystemExit(f"unknown model {name!r}: use resnet18 or resnet50")


def formula(k, shape, offset, scale):
    n = math.prod(shape)
    i = torch.arange(n, dtype=torch.int64)
    x = (i * 2654435761 + (k * 40503 + 12345)) % 2**32   # below 2**54: exact in int64
    u = x.to(torch.float64) / 4294967296.0
    return (offset + scale * (u - 0.5)).to(torch.float32).reshape(shape)


def kind(key, shape, fc_in):
    """(offset, scale) of a float entry, or None for num_batches_tracked."""
    last = key.rsplit(".", 1)[1]
    if last == "num_batches_tracked":
        return None
    if key.startswith("fc."):
        b = 1.0 / math.sqrt(fc_in)
        return 0.0, 2 * b
    if last == "weight" and len(shape) == 4:
        b = math.sqrt(6.0 / (shape[1] * shape[2] * shape[3]))
        return 0.0, 2 * b
    return {"weight": (1.0, 1.0), "bias": (0.0, 0.4), "running_mean": (0.0, 0.4), "running_var": (1.0, 1.0)}[last]



def formula_state(model):
    sd = model.state_dict()
    fc_in = sd["fc.weight"].shape[1]
    out = {}
    for k, (key, t) in enumerate(sd.items()):
        ks = kind(key, list(t.shape), fc_in)
        out[key] = t.clone() if ks is None else formula(k, list(t.shape), *ks)
    return out


def read_safetensors(path):
    dtypes = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
              "I64": torch.int64, "I32": torch.int32, "U8": torch.uint8}
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        raw = bytearray(data[base + a:base + b])
        t = torch.frombuffer(raw, dtype=dtypes[e["dtype"]]) if b > a else torch.empty(0, dtype=dtypes[e["dtype"]])
        out[name] = t.reshape(e["shape"]).clone()
    return out, header


def check(path, name, classes, width):
    model = build(name, classes, width)
    loaded, header = read_safetensors(path)
    print("dtypes:", sorted({e["dtype"] for k, e in header.items() if k != "__metadata__"}))
    result = model.load_state_dict(loaded)   # strict: raises on a missing, unexpected or mis-shaped key
    print("load_state_dict:", result)
    expected = formula_state(model)
    worst = max((model.state_dict()[k].double() - v.double()).abs().max().item() for k, v in expected.items())
    print("largest difference from the formula:", worst)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "check":
        args = sys.argv[2:]
        check(args[0], args[1], int(args[2]) if len(args) > 2 else 1000, int(args[3]) if len(args) > 3 else 64)
        return
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float32)
    tensors, metadata = {"input": x}, {}
    for name in ["resnet18", "resnet50"]:
        model = build(name)
        state = formula_state(model)
        model.load_state_dict(state)
        model = model.double().eval()
        with torch.no_grad():
            y = model(x.double())
        tensors[name] = y
        metadata[name + "_keys"] = "\n".join(state.keys())
        metadata[name + "_sha256"] = hashlib.sha256(b"".join(
            t.numpy().tobytes() for t in state.values() if t.dtype == torch.float32)).hexdigest()
        print(name, "output: mean |y|", y.abs().mean().item(), "max |y|", y.abs().max().item(), "first", y[0, :4].tolist())
    save_safetensors("resnet_formula_io.safetensors", tensors)
    add_metadata("resnet_formula_io.safetensors", metadata)


def add_metadata(path, metadata):
    """Rewrites the file's header with a __metadata__ entry (make_resnet18.save_safetensors writes none)."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    header = {"__metadata__": metadata, **header}
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        f.write(data[8 + n:])


if __name__ == "__main__":
    main()
