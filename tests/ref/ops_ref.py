"""Independent PyTorch reference for each CPU kernel (tests/test_ops.c compares).

Odd sizes on purpose (N=17, C=24, H=3). For every op: inputs, output, an upstream
gradient, and the gradients autograd computes from standard torch ops.
usage: ops_ref.py OUT.safetensors
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402
from beit_ref import rel_index  # noqa: E402

torch.set_num_threads(1)
g = torch.Generator().manual_seed(1234)
T = {}


def rnd(*shape, scale=1.0):
    return (scale * torch.randn(*shape, generator=g)).requires_grad_(True)


def put(prefix, **kw):
    for k, v in kw.items():
        T[f"{prefix}.{k}"] = (v.detach() if torch.is_tensor(v) else torch.tensor(v)).numpy().copy()


def with_grad(prefix, out, inputs):
    dout = torch.randn(out.shape, generator=g)
    grads = torch.autograd.grad(out, list(inputs.values()), dout)
    put(prefix, out=out, dout=dout)
    put(prefix, **{f"d{k}": v for k, v in zip(inputs, grads)})


M, C, OC, B, N, H = 13, 24, 10, 2, 17, 3
# linear
x, w, b = rnd(M, C), rnd(OC, C), rnd(OC)
put("linear", x=x, w=w, b=b)
with_grad("linear", F.linear(x, w, b), dict(x=x, w=w, b=b))
# layernorm
x, w, b = rnd(M, C, scale=3.0), rnd(C), rnd(C)
put("ln", x=x, w=w, b=b)
with_grad("ln", F.layer_norm(x, (C,), w, b, 1e-6), dict(x=x, w=w, b=b))
# gelu (exact erf)
x = rnd(M, C, scale=2.0)
put("gelu", x=x)
with_grad("gelu", F.gelu(x), dict(x=x))
# attention with relative position bias: 4x4 grid + CLS = 17 tokens
idx, rows = rel_index(4, 4)
qkv, table = rnd(B, N, 3 * C), rnd(rows, H, scale=0.5)
put("attn", qkv=qkv, table=table, index=idx.to(torch.int32))
bias = table[idx.view(-1)].view(N, N, H).permute(2, 0, 1)
q, k, v = qkv.view(B, N, 3, H, C // H).permute(2, 0, 3, 1, 4)
a = ((q * (C // H) ** -0.5) @ k.transpose(-2, -1) + bias).softmax(-1)
out = (a @ v).transpose(1, 2).reshape(B, N, C)
put("attn", att=a)
with_grad("attn", out, dict(qkv=qkv, table=table))
# residual with layer scale and drop path (sample 1 dropped, sample 0 kept at 1/0.8)
res, xx, gamma = rnd(B, N, C), rnd(B, N, C), rnd(C)
keep = torch.tensor([1 / 0.8, 0.0])
put("resid", res=res, x=xx, gamma=gamma, keep=keep)
with_grad("resid", res + keep.view(B, 1, 1) * gamma * xx, dict(res=res, x=xx, gamma=gamma))
# mean pooling over patch tokens (CLS excluded)
x = rnd(B, N, C)
put("pool", x=x)
with_grad("pool", x[:, 1:].mean(1), dict(x=x))
# softmax cross-entropy, hard and soft targets
K = 11
logits, target = rnd(M, K, scale=2.0), torch.randint(0, K, (M,), generator=g)
soft = torch.softmax(torch.randn(M, K, generator=g), -1)
put("xent", logits=logits, target=target.to(torch.int32), soft=soft)
l1 = F.cross_entropy(logits, target)
(d1,) = torch.autograd.grad(l1, [logits])
l2 = torch.sum(-soft * F.log_softmax(logits, -1), -1).mean()
(d2,) = torch.autograd.grad(l2, [logits])
put("xent", loss=l1.reshape(1), dlogits=d1, soft_loss=l2.reshape(1), soft_dlogits=d2)
# label smoothing 0.1 equals soft targets eps/K + (1-eps) one-hot
l3 = F.cross_entropy(logits, target, label_smoothing=0.1)
put("xent", smooth_loss=l3.reshape(1))
# mse
pred, tgt = rnd(M, C), torch.randn(M, C, generator=g)
l4 = F.mse_loss(pred, tgt)
(d4,) = torch.autograd.grad(l4, [pred])
put("mse", pred=pred, target=tgt, loss=l4.reshape(1), dpred=d4)
# AdamW: three steps of torch.optim.AdamW on a fixed gradient sequence
p = torch.randn(M, C, generator=g)
grads = [torch.randn(M, C, generator=g) for _ in range(3)]
put("adamw", p0=p, g0=grads[0], g1=grads[1], g2=grads[2])
pt = p.clone().requires_grad_(True)
opt = torch.optim.AdamW([pt], lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05)
for gr in grads:
    pt.grad = gr.clone()
    opt.step()
put("adamw", p3=pt)
# wide ranges, and sizes that end in a partial vector on every ISA (test_ops runs each path)
x = torch.cat([torch.linspace(-12, 12, 997), torch.tensor([0.0, -0.0, 1e-30])]).requires_grad_(True)
put("gelu_wide", x=x)
with_grad("gelu_wide", F.gelu(x), dict(x=x))
# the MLP's first layer with its GELU (the backward pass's fused GELU), rows of 520: a partial vector
x, w, b = rnd(300, 24), rnd(520, 24, scale=0.3), rnd(520)
pre = F.linear(x, w, b)
put("lin_gelu", x=x, w=w, b=b, pre=pre)
with_grad("lin_gelu", F.gelu(pre), dict(x=x, w=w, b=b))
x, w, b = (rnd(5, 100, scale=3.0) + 40).detach().requires_grad_(True), rnd(100), rnd(100)
put("ln_wide", x=x, w=w, b=b)
with_grad("ln_wide", F.layer_norm(x, (100,), w, b, 1e-6), dict(x=x, w=w, b=b))
logits, target = rnd(7, 1005, scale=30.0), torch.randint(0, 1005, (7,), generator=g)
l5 = F.cross_entropy(logits, target)
(d5,) = torch.autograd.grad(l5, [logits])
put("xent_wide", logits=logits, target=target.to(torch.int32), loss=l5.reshape(1), dlogits=d5,
    probs=torch.softmax(logits, -1))
# the fused attention kernels (N <= 257, D % 16 == 0) and the sgemm path past them (N = 258), in
# float64: attn_N_D (no bias) and attn_N_Db (a random [H, N, N] bias, its gradient summed over the batch)
ga = torch.Generator().manual_seed(4321)
for n in (1, 2, 17, 50, 65, 197, 257, 258):
    for d in (32, 64):
        bb, hh = (2, 2) if n <= 65 else (1, 2) if n < 257 else (1, 1)
        cc = d * hh
        qkv = torch.randn(bb, n, 3 * cc, generator=ga, dtype=torch.float64)
        bias = 0.5 * torch.randn(hh, n, n, generator=ga, dtype=torch.float64)
        dout = torch.randn(bb, n, cc, generator=ga, dtype=torch.float64)
        name = f"attn_{n}_{d}"
        put(name, qkv=qkv.float(), dout=dout.float(), bias=bias.float())
        for with_bias in (False, True):
            qkv_ = qkv.clone().requires_grad_(True)
            bias_ = bias.clone().requires_grad_(True)
            q, k, v = qkv_.view(bb, n, 3, hh, d).permute(2, 0, 3, 1, 4)
            logits = (q * d ** -0.5) @ k.transpose(-2, -1)
            a = (logits + bias_ if with_bias else logits).softmax(-1)
            out = (a @ v).transpose(1, 2).reshape(bb, n, cc)
            dq, db = torch.autograd.grad(out, [qkv_, bias_], dout, allow_unused=True)
            tag = name + ("b" if with_bias else "")
            put(tag, out=out.float(), att=a.float(), dqkv=dq.float())
            if with_bias:
                put(tag, dbias=db.float())
stio.save(sys.argv[1], T)
