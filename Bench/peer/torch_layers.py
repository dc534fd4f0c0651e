"""PyTorch peer for the layer benchmarks: forward+backward time of the same layers and models
as Bench/Layers/LayersPeer.cs, at batch 128, on random data of Fashion-MNIST's shapes.
Usage: THREADS=1 /usr/bin/python3 torch_layers.py [reps]
Prints one JSON object: name -> median milliseconds per forward+backward."""
import json, os, sys, time
import torch, torch.nn as nn
torch.set_num_threads(int(os.environ.get("THREADS", "1")))
torch.manual_seed(0)
DEV = os.environ.get("DEVICE", "cpu")
reps = int(sys.argv[1]) if len(sys.argv) > 1 else 20
B = 128

def timed(fn):
    for _ in range(3):
        fn()
    ts = []
    for _ in range(reps):
        if DEV == "cuda": torch.cuda.synchronize()
        t0 = time.perf_counter(); fn()
        if DEV == "cuda": torch.cuda.synchronize()
        ts.append((time.perf_counter() - t0) * 1000)
    ts.sort()
    return ts[len(ts) // 2]

def fwdbwd(model, x, loss=None, y=None):
    def run():
        model.zero_grad(set_to_none=True)
        out = model(x)
        (loss(out, y) if loss else out.sum()).backward()
    return run

def layer(mod, shape):
    x = torch.randn(*shape, device=DEV, requires_grad=True)
    mod = mod.to(DEV)
    return fwdbwd(mod, x)

res = {}
res["dense 784->256"] = timed(layer(nn.Linear(784, 256), (B, 784)))
res["dense 256->10"] = timed(layer(nn.Linear(256, 10), (B, 256)))
res["conv 1->32 28x28"] = timed(layer(nn.Conv2d(1, 32, 3, padding=1), (B, 1, 28, 28)))
res["conv 32->64 14x14"] = timed(layer(nn.Conv2d(32, 64, 3, padding=1), (B, 32, 14, 14)))
lossf = nn.CrossEntropyLoss(label_smoothing=0.1)
y = torch.randint(0, 10, (B,), device=DEV)
mlp = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.2), nn.Linear(256, 10)).to(DEV).train()
res["mlp"] = timed(fwdbwd(mlp, torch.rand(B, 784, device=DEV), lossf, y))
cnn = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                    nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
                    nn.Flatten(), nn.Dropout(0.25), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10)).to(DEV).train()
res["cnn"] = timed(fwdbwd(cnn, torch.rand(B, 1, 28, 28, device=DEV), lossf, y))
print(json.dumps({"torch": torch.__version__, "device": DEV, "threads": torch.get_num_threads(), "ms": res}))
