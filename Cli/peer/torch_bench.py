"""PyTorch peer of `ilgpu-train bench`: the same rows, measured the same way (median of synchronized
calls after warm-up), so the command can print IlgpuTrain / PyTorch ratios from one invocation.

Usage: THREADS=1 DEVICE=cpu|cuda /usr/bin/python3 torch_bench.py '<spec json>'
   or: THREADS=1 DEVICE=cpu|cuda /usr/bin/python3 torch_bench.py --serve
The spec is {"reps": int, "budget": seconds, "rows": [{"name": str, "kind": str, ...}, ...]} with
kinds copy/axpy/add/relu/sum/l2norm (n), gemm (m, n, k), adamw (n), fwdbwd/step (model: mlp|cnn|transformer).
With a spec argument it prints one JSON object: {"torch": version, "device": str, "threads": int,
"ms": {name: median ms}}. With --serve it prints {"torch", "device", "threads"} once, then reads one
spec per line of stdin and answers each with one line {"ms": {name: median ms}}, until stdin closes:
`bench` sends each group of rows right after measuring it, so the two sides run interleaved.
"""
import json, os, sys, time
import torch, torch.nn as nn

torch.set_num_threads(int(os.environ.get("THREADS", "1")))
torch.manual_seed(0)
DEV = os.environ.get("DEVICE", "cpu")
SERVE = sys.argv[1] == "--serve"
REPS, BUDGET = 5, 0.5
B = 128


def sync():
    if DEV == "cuda":
        torch.cuda.synchronize()


def median(fn, setup=None, warmup=2):
    for _ in range(warmup):
        if setup: setup()
        fn()
    sync()
    ts, start = [], time.perf_counter()
    while len(ts) < REPS and (len(ts) < 3 or time.perf_counter() - start < BUDGET):
        if setup: setup()
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        ts.append((time.perf_counter() - t0) * 1000)
    ts.sort()
    k = len(ts)
    return ts[k // 2] if k % 2 else (ts[k // 2 - 1] + ts[k // 2]) / 2


def model(name):
    # ../shared/anchors/torch_fmnist.py's models.
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.2), nn.Linear(256, 10))
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Dropout(0.25), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


class LM(nn.Module):
    # IlgpuTrain's TransformerLM(96, 64, 64, 4, 2, 256, 0.1): tied token embedding, learned positions, two
    # pre-norm GELU blocks with a causal mask, a final LayerNorm.
    def __init__(self, v=96, t=64, d=64):
        super().__init__()
        self.tok = nn.Embedding(v, d)
        self.pos = nn.Parameter(torch.randn(t, d) * 0.02)
        self.drop = nn.Dropout(0.1)
        self.blocks = nn.ModuleList([nn.TransformerEncoderLayer(d, 4, 4 * d, dropout=0.1, activation="gelu", batch_first=True, norm_first=True) for _ in range(2)])
        self.norm = nn.LayerNorm(d)

    def forward(self, x):
        t = x.shape[1]
        h = self.drop(self.tok(x) + self.pos[:t])
        mask = torch.triu(torch.full((t, t), float("-inf"), device=x.device), 1)
        for b in self.blocks:
            h = b(h, src_mask=mask)
        return self.norm(h) @ self.tok.weight.T


def row(r):
    kind = r["kind"]
    with torch.no_grad():
        if kind in ("copy", "axpy", "add", "relu", "sum", "l2norm"):
            n = r["n"]
            x = torch.rand(n, device=DEV) * 2 - 1
            y = torch.rand(n, device=DEV) * 2 - 1
            z = torch.empty(n, device=DEV)
            fn = {
                "copy": lambda: z.copy_(x),
                "axpy": lambda: y.add_(x, alpha=1e-6),
                "add": lambda: torch.add(x, y, out=z),
                "relu": lambda: torch.clamp(x, min=0, out=z),
                "sum": lambda: x.sum(),
                "l2norm": lambda: torch.linalg.vector_norm(x),
            }[kind]
            return median(fn)
        if kind == "gemm":
            a = torch.rand(r["m"], r["k"], device=DEV)
            b = torch.rand(r["k"], r["n"], device=DEV)
            c = torch.empty(r["m"], r["n"], device=DEV)
            big = 2.0 * r["m"] * r["n"] * r["k"] > 1e10
            return median(lambda: torch.mm(a, b, out=c), warmup=1 if big else 2)
    if kind == "adamw":
        n = r["n"]
        p = torch.nn.Parameter(torch.rand(n, device=DEV))
        g = torch.rand(n, device=DEV)
        opt = torch.optim.AdamW([p], lr=1e-3, foreach=True)

        def setup():
            p.grad = g.clone()
        return median(opt.step, setup)
    if kind in ("fwdbwd", "step"):
        lm = r["model"] == "transformer"
        m = (LM() if lm else model(r["model"])).to(DEV).train()
        ce = nn.CrossEntropyLoss(label_smoothing=0.1)
        lossf = (lambda z, y: ce(z.reshape(-1, 96), y.reshape(-1))) if lm else ce
        xh = torch.randint(0, 96, (64, 64)) if lm else torch.rand(B, 1, 28, 28)
        yh = torch.randint(0, 96, (64, 64)) if lm else torch.randint(0, 10, (B,))
        opt = torch.optim.AdamW(m.parameters(), lr=1e-3, foreach=True)

        def fwdbwd():
            m.zero_grad(set_to_none=True)
            loss = lossf(m(xh.to(DEV)), yh.to(DEV))
            loss.backward()
            return loss

        def step():
            loss = fwdbwd()
            loss.item()
            torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
            opt.step()
        return median(fwdbwd if kind == "fwdbwd" else step, warmup=3)
    return None


def measure(spec):
    global REPS, BUDGET
    REPS, BUDGET = int(spec["reps"]), float(spec["budget"])
    out = {}
    for r in spec["rows"]:
        try:
            ms = row(r)
            if ms is not None:
                out[r["name"]] = ms
        except Exception as e:  # a row PyTorch cannot run (memory, an old version) stays empty
            print(f"torch_bench: {r['name']}: {e}", file=sys.stderr)
    return out


HELLO = {"torch": torch.__version__, "device": DEV, "threads": torch.get_num_threads()}
if SERVE:
    print(json.dumps(HELLO), flush=True)
    for line in sys.stdin:
        if line.strip():
            print(json.dumps({"ms": measure(json.loads(line))}), flush=True)
else:
    print(json.dumps(dict(HELLO, ms=measure(json.loads(sys.argv[1])))))
