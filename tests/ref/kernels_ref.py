"""PyTorch reference for the kernels the model walks used to run as their own loops
(src/ops/tokens.c, dvae_ops.c, kmeans_ops.c; tests/test_kernels.c compares).

Odd sizes on purpose. Gradients are what autograd computes from standard torch ops.
usage: kernels_ref.py OUT.safetensors
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402

torch.set_num_threads(1)
g = torch.Generator().manual_seed(4321)
T = {}


def rnd(*shape, scale=1.0):
    return (scale * torch.randn(*shape, generator=g)).requires_grad_(True)


def put(prefix, **kw):
    for k, v in kw.items():
        v = v.detach() if torch.is_tensor(v) else torch.tensor(v)
        T[f"{prefix}.{k}"] = v.numpy().copy()


def grads(out, inputs, dout=None):
    dout = torch.randn(out.shape, generator=g) if dout is None else dout
    return dout, torch.autograd.grad(out, list(inputs), dout)


B, N, C = 3, 10, 12
# q/v bias packing: [q | 0 | v]
q, v = rnd(C), rnd(C)
out = torch.cat([q, torch.zeros(C), v])
dout, (dq, dv) = grads(out, [q, v])
put("qkv", q=q, v=v, out=out, dout=dout, dq=dq, dv=dv)
# absolute position embedding
x, pos = rnd(B, N, C), rnd(N, C)
out = x + pos
dout, (dpos,) = grads(out, [pos])
put("pos", x=x, pos=pos, out=out, dout=dout, dpos=dpos)
# masked rows: CLS at token 0 of each image
Np = N - 1
mask = (torch.rand(B, Np, generator=g) < 0.4).to(torch.int32)
tokens = torch.randint(0, 50, (B, Np), generator=g, dtype=torch.int32)
b, p = mask.nonzero(as_tuple=True)
put("rows", mask=mask, tokens=tokens, rows=(b * N + 1 + p).to(torch.int32), targets=tokens[b, p],
    patch_rows=(b * Np + p).to(torch.int32))
# top-1 count: row 0 ties at its target (never counts), row 1 has a NaN
M, K = 17, 9
logits = torch.randn(M, K, generator=g)
target = torch.randint(0, K, (M,), generator=g, dtype=torch.int32)
logits[0, :] = 0
logits[0, target[0]] = logits[0, (target[0] + 1) % K] = 5
logits[1, 2] = float("nan")
mx = logits.max(1).values
unique = (logits == mx[:, None]).sum(1) == 1
ok = unique & (logits.argmax(1) == target) & ~logits.isnan().any(1)
put("top1", logits=logits, target=target, correct=torch.tensor([int(ok.sum())], dtype=torch.int32))

# ---- dVAE latent layer, [B, V, h, w]
Bd, V, h, w, tau, kl_coef, EPS = 2, 13, 3, 4, 0.7, 0.3, 0.1
logits, gum = rnd(Bd, V, h, w, scale=2.0), -torch.log(-torch.log(torch.rand(Bd, V, h, w, generator=g)))
logq = F.log_softmax(logits, 1)
qq = logq.exp()
kl = (qq * (logq + math.log(V))).sum()
z = F.softmax((logits + gum) / tau, 1)
dz = torch.randn(z.shape, generator=g)
(dl,) = torch.autograd.grad((z * dz).sum() + kl_coef * kl, [logits])
put("latent", logits=logits, gumbel=gum, q=qq, z=z, kl=kl.reshape(1), dz=dz, dlogits=dl)
qbar = qq.detach().mean((0, 2, 3))
put("latent", perplexity=torch.exp(-(qbar * qbar.log()).sum()).reshape(1),
    codes=logits.argmax(1).reshape(Bd, -1).to(torch.int32))
# the codebook-usage KL: N * sum_k qbar_k ln qbar_k with qbar the mean of softmax(logits) over the N cells
lg = logits.clone().requires_grad_(True)
qb = F.softmax(lg, 1).mean((0, 2, 3))
(du,) = torch.autograd.grad(kl_coef * Bd * h * w * (qb * qb.log()).sum(), [lg])
put("latent", qbar=qbar, dusage=du)
put("latent", one_hot=F.one_hot(logits.argmax(1), V).permute(0, 3, 1, 2).float())
codes = torch.randint(0, 40, (57,), generator=g, dtype=torch.int32)
put("codes", codes=codes, distinct=torch.tensor([len(codes.unique())], dtype=torch.int32))
# pixel mapping and the reconstruction losses
Cc, S = 2, 5
img = torch.rand(Bd, Cc, S, S, generator=g)
xm = (1 - 2 * EPS) * img + EPS
out = rnd(Bd, 2 * Cc, S, S)
put("recon", img=img, xm=xm, out=out)
put("recon", unmapped=((torch.sigmoid(out[:, :Cc]) - EPS) / (1 - 2 * EPS)).clamp(0, 1))
mu, lnb = out[:, :Cc], out[:, Cc:]
t = torch.log(xm / (1 - xm))
laplace = ((t - mu).abs() * torch.exp(-lnb) + lnb + math.log(2) + torch.log(xm * (1 - xm))).mean()
mse = ((torch.sigmoid(mu) - xm) ** 2).mean()
for name, loss in (("laplace", laplace), ("mse", mse)):
    (d,) = torch.autograd.grad(loss, [out])
    put("recon", **{name: loss.reshape(1), "d" + name: d})

# ---- k-means: rows x[n, D], centroids c[k, D]; centroid 5 is centroid 2 again (a tie)
n, D, k = 40, 7, 9
x, cen = torch.randn(n, D, generator=g), torch.randn(k, D, generator=g)
cen[5] = cen[2]
x[3] = cen[2] + 1e-3  # nearest to the tied pair: the lower index wins
d2 = ((x[:, None, :].double() - cen[None].double()) ** 2).sum(-1)
put("km", x=x, c=cen, dots=x @ cen.T, labels=d2.argmin(1).to(torch.int32), dist2=d2.min(1).values.float(),
    sumsq=(x.double() ** 2).sum(1).float())
prev = (torch.rand(n, generator=g) * 20).double()  # exact as float32 too
put("km", prev_d2=prev, lowered=torch.minimum(prev, d2[:, 4]))
xs = x * 3 + 1
m = xs.double().mean(1, keepdim=True)
var = ((xs.double() - m) ** 2).mean(1, keepdim=True)
put("km", raw=xs, standardized=((xs.double() - m) / torch.sqrt(var + 0.01)).float())
labels = torch.randint(0, k - 1, (n,), generator=g)  # the last centroid has no members
means = cen.clone()
for j in range(k):
    if (labels == j).any():
        means[j] = x[labels == j].double().mean(0).float()
put("km", member_of=labels.to(torch.int32), means=means)
# unpatchify: patches [B * G*G, Cin*P*P] channel-major (c, ky, kx), as patchify writes them
Bu, Cin, P, G = 2, 3, 2, 3
im = torch.randn(Bu, Cin, G * P, G * P, generator=g)
patches = im.reshape(Bu, Cin, G, P, G, P).permute(0, 2, 4, 1, 3, 5).reshape(Bu * G * G, Cin * P * P)
index = torch.randint(0, Bu * G * G, (Bu * G * G,), generator=g, dtype=torch.int32)
gathered = patches[index.long()].reshape(Bu, G, G, Cin, P, P).permute(0, 3, 1, 4, 2, 5).reshape(im.shape)
put("unpatch", img=im, patches=patches, index=index, gathered=gathered)

stio.save(sys.argv[1], T, {})
