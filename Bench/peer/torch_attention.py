"""PyTorch peer for the attention benchmark (Bench/Kernels/AttentionPeer.cs): the same shapes, in
float32, through the explicit math of scaled dot-product attention (torch 1.13 has no fused
F.scaled_dot_product_attention): softmax(q k^T scale [+ causal mask]) v, materializing the (L, L)
matrix. Usage: THREADS=1 /usr/bin/python3 torch_attention.py [reps]
Prints one JSON object: name -> median milliseconds (forward, and forward+backward)."""
import json, math, os, sys, time
import torch
torch.set_num_threads(int(os.environ.get("THREADS", "1")))
torch.manual_seed(0)
reps = int(sys.argv[1]) if len(sys.argv) > 1 else 20
CASES = [(8, 4, 128, 32, False), (8, 4, 128, 32, True), (2, 4, 512, 64, True)]


def timed(fn):
    for _ in range(3):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter(); fn()
        ts.append((time.perf_counter() - t0) * 1000)
    ts.sort()
    return ts[len(ts) // 2]


def sdpa(q, k, v, causal):
    s = q @ k.transpose(-2, -1) * (1.0 / math.sqrt(q.shape[-1]))
    if causal:
        L = q.shape[-2]
        s = s.masked_fill(~torch.ones(L, L, dtype=torch.bool).tril(0), float("-inf"))
    return torch.softmax(s, dim=-1) @ v


res = {}
for b, h, L, d, causal in CASES:
    name = f"B{b} H{h} L{L} D{d}{' causal' if causal else ''}"
    q, k, v = (torch.randn(b, h, L, d, requires_grad=True) for _ in range(3))
    g = torch.randn(b, h, L, d)

    def fwd():
        with torch.no_grad():
            sdpa(q, k, v, causal)

    def fwdbwd():
        q.grad = k.grad = v.grad = None
        (sdpa(q, k, v, causal) * g).sum().backward()

    res[name + " fwd"] = timed(fwd)
    res[name + " fwd+bwd"] = timed(fwdbwd)
print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "ms": res}))
