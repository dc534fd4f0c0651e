#!/usr/bin/env python3
"""The PyTorch peer of the README's character-level language model (issue: Transformers).

Same data, split, model and hyperparameters as
  ilgpu-train train --dataset text --model transformer --block-size 64 --dim 64 --layers 2 --heads 4 \
    --train-limit 19200 --epochs 1 --batch-size 64 --lr 3e-3 --schedule warmup-cosine --weight-decay 0.1
Debian's fortunes (/usr/share/games/fortunes, the files IlgpuTrain's TextCorpus reads, in the same order),
a character vocabulary of the whole text, the last 10% for validation; training windows of 64 characters
every 32, 19200 of them, one epoch of batches of 64; token embedding N(0, 0.02) tied to the output head,
learned positions N(0, 0.02), two pre-norm GELU blocks (nn.TransformerEncoderLayer, 4 heads, feed-forward
256, dropout 0.1, causal mask), a final LayerNorm; AdamW (weight decay 0.1 on matrices only), linear warmup
over 5% of the updates then cosine to 0, clipping at 1, label smoothing 0.1. Prints the training time per
step (one thread, as bench runs PyTorch) and the validation bits per character without smoothing.

Run with Debian's python3-torch: /usr/bin/python3 torch_lm.py
The README's longer run (no --train-limit, --epochs 2): N_TRAIN=all EPOCHS=2 /usr/bin/python3 torch_lm.py
(every training window, a fresh permutation each epoch, warmup and cosine over all the updates).
"""
import os, math, time, torch, torch.nn as nn, torch.nn.functional as F
torch.manual_seed(0); torch.set_num_threads(1)
d='/usr/share/games/fortunes'
files=sorted(f for f in os.listdir(d) if not f.startswith('.') and not os.path.islink(os.path.join(d,f)) and not f.endswith(('.dat','.gz','.zip')))
parts=[]
for f in sorted(os.path.join(d,f) for f in files):
    b=open(f,'rb').read()
    if b'\0' in b: continue
    parts.append(b.decode('utf-8').replace('\r\n','\n'))
text='\n'.join(parts)
chars=sorted(set(text)); stoi={c:i for i,c in enumerate(chars)}
ids=torch.tensor([stoi[c] for c in text])
cut=round(len(ids)*0.9); tr, va = ids[:cut], ids[cut:]
T=64; stride=32; V=len(chars); D=64
n_all=(len(tr)-T-1)//stride+1
n_train=n_all if os.environ.get('N_TRAIN','19200')=='all' else min(n_all,int(os.environ.get('N_TRAIN','19200')))
epochs=int(os.environ.get('EPOCHS','1'))
starts=torch.arange(n_train)*stride
class Block(nn.Module):
    def __init__(s):
        super().__init__(); s.l=nn.TransformerEncoderLayer(D,4,4*D,dropout=0.1,activation='gelu',batch_first=True,norm_first=True)
    def forward(s,x,mask): return s.l(x,src_mask=mask)
class LM(nn.Module):
    def __init__(s):
        super().__init__(); s.tok=nn.Embedding(V,D); nn.init.normal_(s.tok.weight,0,0.02); s.pos=nn.Parameter(torch.randn(T,D)*0.02)
        s.drop=nn.Dropout(0.1); s.blocks=nn.ModuleList([Block() for _ in range(2)]); s.norm=nn.LayerNorm(D)
    def forward(s,x):
        t=x.shape[1]; h=s.drop(s.tok(x)+s.pos[:t]); mask=torch.triu(torch.full((t,t),float('-inf')),1)
        for b in s.blocks: h=b(h,mask)
        return s.norm(h)@s.tok.weight.T
m=LM()
decay=[p for p in m.parameters() if p.dim()>=2]; nodecay=[p for p in m.parameters() if p.dim()<2]
opt=torch.optim.AdamW([{'params':decay,'weight_decay':0.1},{'params':nodecay,'weight_decay':0}],lr=3e-3)
per_epoch=n_train//64; steps=epochs*per_epoch; warm=max(1,int(0.05*steps))
sched=torch.optim.lr_scheduler.LambdaLR(opt,lambda s: (s+1)/warm if s<warm else 0.5*(1+math.cos(math.pi*(s-warm)/max(1,steps-warm))))
g=torch.Generator().manual_seed(0)
t0=time.time()
for step in range(steps):
    if step%per_epoch==0: perm=torch.randperm(n_train,generator=g)
    k=step%per_epoch
    idx=starts[perm[k*64:(k+1)*64]]
    x=torch.stack([tr[i:i+T] for i in idx]); y=torch.stack([tr[i+1:i+T+1] for i in idx])
    loss=F.cross_entropy(m(x).reshape(-1,V),y.reshape(-1),label_smoothing=0.1)
    opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(m.parameters(),1.0); opt.step(); sched.step()
dt=time.time()-t0
m.eval(); tot=0; n=0
with torch.no_grad():
    nv=(len(va)-T-1)//T+1
    for b in range(0,nv,256):
        idx=torch.arange(b,min(nv,b+256))*T
        x=torch.stack([va[i:i+T] for i in idx]); y=torch.stack([va[i+1:i+T+1] for i in idx])
        tot+=F.cross_entropy(m(x).reshape(-1,V),y.reshape(-1),reduction='sum').item(); n+=y.numel()
print(f"torch: {steps} steps in {dt:.1f}s ({dt/steps*1000:.1f} ms/step), val bits/char {tot/n/math.log(2):.3f}, V={V}")
