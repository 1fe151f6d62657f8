"""Independent PyTorch reference for a small BEiT (tests/test_model.c compares to it).

Written from the method description with standard torch ops and autograd; it shares
no code with the C side. For one batch it writes: the initial parameters (timm names),
the inputs, the loss, every parameter gradient, and the parameters after a few AdamW
steps with BEiT's warmup + cosine schedule, weight-decay groups and layer decay.

usage: beit_ref.py OUT.safetensors {mim|pixel|classify|classify_soft} SEED
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402

torch.set_num_threads(1)


def rel_index(wh, ww):
    n = wh * ww + 1
    r = (2 * wh - 1) * (2 * ww - 1) + 3
    idx = torch.zeros(n, n, dtype=torch.long)
    for a in range(1, n):
        for b in range(1, n):
            ra, ca, rb, cb = (a - 1) // ww, (a - 1) % ww, (b - 1) // ww, (b - 1) % ww
            idx[a, b] = (ra - rb + wh - 1) * (2 * ww - 1) + (ca - cb + ww - 1)
    idx[0, :] = r - 3
    idx[:, 0] = r - 2
    idx[0, 0] = r - 1
    return idx, r


class Attention(nn.Module):
    def __init__(s, dim, heads, table_rows, per_layer_table):
        super().__init__()
        s.h = heads
        s.qkv = nn.Linear(dim, 3 * dim, bias=False)
        s.q_bias = nn.Parameter(torch.zeros(dim))
        s.v_bias = nn.Parameter(torch.zeros(dim))
        if per_layer_table:
            s.relative_position_bias_table = nn.Parameter(torch.zeros(table_rows, heads))
        s.proj = nn.Linear(dim, dim)

    def forward(s, x, index, shared_bias):
        b, n, c = x.shape
        bias = torch.cat([s.q_bias, torch.zeros_like(s.v_bias), s.v_bias])
        qkv = F.linear(x, s.qkv.weight, bias).reshape(b, n, 3, s.h, c // s.h).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * (c // s.h) ** -0.5, qkv[1], qkv[2]
        logits = q @ k.transpose(-2, -1)
        if hasattr(s, "relative_position_bias_table"):
            logits = logits + s.relative_position_bias_table[index.view(-1)].view(n, n, -1).permute(2, 0, 1)
        if shared_bias is not None:
            logits = logits + shared_bias
        a = logits.softmax(-1)
        return s.proj((a @ v).transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    def __init__(s, cfg, rows):
        super().__init__()
        d = cfg["dim"]
        s.norm1 = nn.LayerNorm(d, eps=1e-6)
        s.attn = Attention(d, cfg["heads"], rows, not cfg["shared"])
        s.norm2 = nn.LayerNorm(d, eps=1e-6)
        s.mlp = nn.Sequential()
        s.mlp.fc1 = nn.Linear(d, 4 * d)
        s.mlp.fc2 = nn.Linear(4 * d, d)
        s.gamma_1 = nn.Parameter(torch.full((d,), cfg["ls"]))
        s.gamma_2 = nn.Parameter(torch.full((d,), cfg["ls"]))

    def forward(s, x, index, shared_bias):
        x = x + s.gamma_1 * s.attn(s.norm1(x), index, shared_bias)
        return x + s.gamma_2 * s.mlp.fc2(F.gelu(s.mlp.fc1(s.norm2(x))))


class Beit(nn.Module):
    def __init__(s, cfg):
        super().__init__()
        d, p, g = cfg["dim"], cfg["patch"], cfg["img"] // cfg["patch"]
        s.cfg = cfg
        s.register_buffer("index", rel_index(g, g)[0])
        rows = rel_index(g, g)[1]
        s.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        s.patch_embed = nn.Module()
        s.patch_embed.proj = nn.Conv2d(cfg["ch"], d, p, p)
        if cfg["task"] != "classify":
            s.mask_token = nn.Parameter(torch.zeros(1, 1, d))
        if cfg["shared"]:
            s.rel_pos_bias = nn.Module()
            s.rel_pos_bias.relative_position_bias_table = nn.Parameter(torch.zeros(rows, cfg["heads"]))
        s.blocks = nn.ModuleList([Block(cfg, rows) for _ in range(cfg["depth"])])
        if cfg["task"] == "classify":
            s.fc_norm = nn.LayerNorm(d, eps=1e-6)
            s.head = nn.Linear(d, cfg["classes"])
        else:
            s.norm = nn.LayerNorm(d, eps=1e-6)
            out = cfg["vocab"] if cfg["task"] == "mim" else cfg["ch"] * p * p
            setattr(s, "lm_head" if cfg["task"] == "mim" else "pixel_head", nn.Linear(d, out))

    def encode(s, img, mask):
        e = s.patch_embed.proj(img).flatten(2).transpose(1, 2)
        if mask is not None:
            w = mask.unsqueeze(-1).float()
            e = e * (1 - w) + s.mask_token.expand_as(e) * w
        x = torch.cat([s.cls_token.expand(e.shape[0], -1, -1), e], 1)
        shared = None
        if s.cfg["shared"]:
            n = x.shape[1]
            shared = s.rel_pos_bias.relative_position_bias_table[s.index.view(-1)].view(n, n, -1).permute(2, 0, 1)
        for blk in s.blocks:
            x = blk(x, s.index, shared)
        return x


def randomize(model, gen):
    """Every tensor random (biases, LayerScale and tables too) so every path is exercised."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name.startswith("norm.w") or name.startswith("fc_norm.w"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))


def loss_of(model, cfg, img, mask, tokens, labels, soft):
    x = model.encode(img, mask if cfg["task"] != "classify" else None)
    if cfg["task"] == "classify":
        logits = model.head(model.fc_norm(x[:, 1:].mean(1)))
        if soft is not None:
            return torch.sum(-soft * F.log_softmax(logits, -1), -1).mean()
        return F.cross_entropy(logits, labels)
    h = model.norm(x[:, 1:][mask])
    if cfg["task"] == "mim":
        return F.cross_entropy(model.lm_head(h), tokens[mask])
    p = cfg["patch"]
    b, c, s, _ = img.shape
    patches = img.reshape(b, c, s // p, p, s // p, p).permute(0, 2, 4, 1, 3, 5).reshape(b, -1, c * p * p)
    return F.mse_loss(model.pixel_head(h), patches[mask])


def lr_at(step, lr, min_lr, warm, total):
    if step < warm:
        return lr * step / (warm - 1) if warm > 1 else lr
    i = min(step - warm, total - warm)
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * i / (total - warm)))


def main():
    out, task = sys.argv[1], sys.argv[2]
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    soft_targets = task == "classify_soft"
    task = "classify" if soft_targets else task
    cfg = dict(task=task, img=16, ch=3, patch=4, dim=32, depth=2, heads=4, ls=0.1, vocab=37, classes=5,
               shared=task != "classify")
    gen = torch.Generator().manual_seed(seed)
    model = Beit(cfg)
    randomize(model, gen)
    b, g = 3, cfg["img"] // cfg["patch"]
    img = torch.randn(b, cfg["ch"], cfg["img"], cfg["img"], generator=gen)
    mask = torch.rand(b, g * g, generator=gen) < 0.4
    mask[:, 0] = True  # at least one masked patch per image
    tokens = torch.randint(0, cfg["vocab"], (b, g * g), generator=gen)
    labels = torch.randint(0, cfg["classes"], (b,), generator=gen)
    soft = torch.softmax(torch.randn(b, cfg["classes"], generator=gen), -1) if soft_targets else None

    tensors = {f"param.{k}": v.detach().numpy().copy() for k, v in model.named_parameters()}
    tensors.update({"in.images": img.numpy(), "in.mask": mask.numpy().astype(np.uint8),
                    "in.tokens": tokens.numpy().astype(np.int32), "in.labels": labels.numpy().astype(np.int32)})
    if soft is not None:
        tensors["in.soft_labels"] = soft.numpy()

    loss = loss_of(model, cfg, img, mask, tokens, labels, soft)
    loss.backward()
    tensors["out.loss"] = np.array([loss.item()], dtype=np.float32)
    for k, v in model.named_parameters():
        tensors[f"grad.{k}"] = v.grad.numpy().copy()

    # AdamW steps on the same batch: BEiT's no-decay set and (for classify) layer decay
    opt_cfg = dict(lr=2e-3, min_lr=1e-5, warm=2, total=5, wd=0.05, layer_decay=0.75 if task == "classify" else 1.0)
    depth = cfg["depth"]

    def layer_id(name):
        if name.startswith(("cls_token", "mask_token", "patch_embed")):
            return 0
        if name.startswith("blocks."):
            return int(name.split(".")[1]) + 1
        return depth + 1

    groups = []
    for k, v in model.named_parameters():
        no_decay = v.ndim == 1 or k.endswith(".bias") or k in ("cls_token", "pos_embed")
        scale = opt_cfg["layer_decay"] ** (depth + 1 - layer_id(k))
        groups.append(dict(params=[v], weight_decay=0.0 if no_decay else opt_cfg["wd"], lr_scale=scale))
    opt = torch.optim.AdamW(groups, lr=opt_cfg["lr"], betas=(0.9, 0.999), eps=1e-8)
    losses = []
    for step in range(opt_cfg["total"]):
        if step > 0:
            opt.zero_grad()
            l = loss_of(model, cfg, img, mask, tokens, labels, soft)
            l.backward()
            losses.append(l.item())
        else:
            losses.append(loss.item())
        lr = lr_at(step, opt_cfg["lr"], opt_cfg["min_lr"], opt_cfg["warm"], opt_cfg["total"])
        for grp in opt.param_groups:
            grp["lr"] = lr * grp["lr_scale"]
        opt.step()
    tensors["out.losses"] = np.array(losses, dtype=np.float32)
    for k, v in model.named_parameters():
        tensors[f"final.{k}"] = v.detach().numpy().copy()
    meta = {k: str(v) for k, v in cfg.items()}
    meta.update({k: str(v) for k, v in opt_cfg.items()})
    stio.save(out, tensors, meta)


if __name__ == "__main__":
    main()
