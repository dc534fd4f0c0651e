#!/usr/bin/env python3
"""Writes the PyTorch fixtures of StateDictProperties and TorchvisionResNetProperties.

Run from this folder with Debian's python3-torch (1.13): /usr/bin/python3 make_resnet18.py
No download: torchvision is not needed. ResNet-18 is defined below exactly as
torchvision/models/resnet.py defines it (same module names, so the same state_dict keys), with
one change: the base width (torchvision's 64) is a parameter, 8 here, to keep the fixture small.

Outputs (safetensors written directly: 8-byte little-endian header length, JSON header, raw bytes):
  resnet18_w8.safetensors     state_dict of ResNet-18 width 8, 10 classes: floats stored as F16,
                              num_batches_tracked as I64 (as PyTorch keeps it)
  resnet18_w8_io.safetensors  "input" (2, 3, 64, 64) F32 and "output" (2, 10) F32: the eval-mode
                              forward of the model whose weights are the F16 values above
  dtypes.safetensors          one small tensor per dtype (F32, F16, BF16, F64, I64, I32, U8, BOOL)
make_resnet_formula.py (beside this one) imports these definitions for the full-width fixture.
"""
import json
import struct

import torch
import torch.nn as nn


def conv3x3(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, block, layers, num_classes=1000, width=64):
        super().__init__()
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(block, width * 8, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(width * 8 * block.expansion, num_classes)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride), nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
          torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8", torch.bool: "BOOL"}


def save_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous()
        # bytes in memory order (little-endian on x86), via a uint8 view of the storage
        flat = t.reshape(-1)
        raw = flat.to(torch.uint8).numpy().tobytes() if t.dtype == torch.bool else flat.view(torch.uint8).numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for raw in blobs:
            f.write(raw)


def main():
    torch.manual_seed(0)
    model = ResNet(BasicBlock, [2, 2, 2, 2], num_classes=10, width=8)
    # Non-trivial BatchNorm statistics and affine parameters, so eval mode is more than the identity.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.num_batches_tracked.fill_(7)
    # Stored as F16: round every float to half first, so the recorded output is that of the stored weights.
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    model.load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in state.items()})
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        y = model(x)
    save_safetensors("resnet18_w8.safetensors", state)
    save_safetensors("resnet18_w8_io.safetensors", {"input": x, "output": y})

    values = [1.5, -2.25, 1.0 / 3.0, 65504.0, -0.0, 1e-3]
    save_safetensors("dtypes.safetensors", {
        "f32": torch.tensor(values, dtype=torch.float32),
        "f16": torch.tensor(values, dtype=torch.float16),
        "bf16": torch.tensor(values, dtype=torch.bfloat16).reshape(2, 3),
        "f64": torch.tensor(values, dtype=torch.float64),
        "i64": torch.tensor([0, 7, -3, 2**31 - 1, -2**31, 123456789012], dtype=torch.int64),
        "i32": torch.tensor([0, 7, -3, 2**31 - 1, -2**31, 5], dtype=torch.int32),
        "u8": torch.tensor([0, 1, 127, 128, 255, 9], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True, True, False, False]),
        "nbt": torch.tensor(12345, dtype=torch.int64),
    })
    for name, t in [("f16", torch.tensor(values, dtype=torch.float16)), ("bf16", torch.tensor(values, dtype=torch.bfloat16))]:
        print(name, "as float32:", [repr(v) for v in t.float().tolist()])
    print("f64 as float32:", [repr(v) for v in torch.tensor(values, dtype=torch.float64).float().tolist()])
    print("output:", y.tolist())


if __name__ == "__main__":
    main()
