"""Independent PyTorch references for checkpoint interoperability (tests/test_interop.c).

Each scheme is written here as its own small torch module, with that library's
parameter names and its own forward (timm's beit.py, the official unilm code,
Hugging Face transformers' Beit* classes); nothing is downloaded and no code is
shared with the C side.

  interop_ref.py make DIR SIZE            every case below, randomly initialised, saved
                                          in its scheme's layout: DIR/<case>.safetensors
                                          (timm, unilm) or DIR/<case>/ (hf: model.safetensors
                                          + config.json), and DIR/<case>.ref.safetensors with
                                          the input images (+ mask) and the logits.
                                          SIZE: tiny (default test) or base (BEiT-B at 224).
  interop_ref.py load JOBS                each line of JOBS: SCHEME PATH REF OUT HEADS. Builds
                                          the scheme's module from an exported checkpoint,
                                          load_state_dict(strict=True), runs REF's inputs and
                                          writes the logits to OUT.
  interop_ref.py resize OUT               relative position tables resized by unilm's
                                          run_class_finetuning.py procedure (scipy interp2d,
                                          cubic) and pos_embed by F.interpolate(bicubic).
"""
import json
import math
import os
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402

torch.set_num_threads(1)


# ---------------------------------------------------------------- shared pieces
def rel_index(g):
    """BEiT's [N, N] relative position index for a g x g grid (spec 1.4), written directly."""
    n, size = g * g + 1, 2 * g - 1
    rows = size * size + 3
    idx = np.zeros((n, n), dtype=np.int64)
    r, c = np.divmod(np.arange(g * g), g)
    idx[1:, 1:] = (r[:, None] - r[None, :] + g - 1) * size + (c[:, None] - c[None, :] + g - 1)
    idx[0, :] = rows - 3
    idx[:, 0] = rows - 2
    idx[0, 0] = rows - 1
    return torch.from_numpy(idx), rows


def table_bias(table, index):
    n = index.shape[0]
    return table[index.reshape(-1)].reshape(n, n, -1).permute(2, 0, 1)


# ---------------------------------------------------------------- timm / unilm names
class TimmAttention(nn.Module):
    def __init__(s, cfg, per_block, persistent_index):
        super().__init__()
        d = cfg["dim"]
        s.heads = cfg["heads"]
        s.qkv = nn.Linear(d, 3 * d, bias=False)
        s.q_bias = nn.Parameter(torch.zeros(d))
        s.v_bias = nn.Parameter(torch.zeros(d))
        if per_block:
            index, rows = rel_index(cfg["grid"])
            s.relative_position_bias_table = nn.Parameter(torch.zeros(rows, s.heads))
            s.register_buffer("relative_position_index", index, persistent=persistent_index)
        s.proj = nn.Linear(d, d)

    def forward(s, x, shared):
        b, n, d = x.shape
        qkv = F.linear(x, s.qkv.weight, torch.cat([s.q_bias, torch.zeros_like(s.q_bias), s.v_bias]))
        q, k, v = qkv.reshape(b, n, 3, s.heads, d // s.heads).permute(2, 0, 3, 1, 4)
        att = (q * (d // s.heads) ** -0.5) @ k.transpose(-1, -2)
        if hasattr(s, "relative_position_bias_table"):
            att = att + table_bias(s.relative_position_bias_table, s.relative_position_index)
        if shared is not None:
            att = att + shared
        return s.proj((att.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d))


class TimmBlock(nn.Module):
    def __init__(s, cfg, persistent_index):
        super().__init__()
        d, eps = cfg["dim"], cfg["eps"]
        s.norm1 = nn.LayerNorm(d, eps=eps)
        s.attn = TimmAttention(cfg, cfg["rel"] == "block", persistent_index)
        s.norm2 = nn.LayerNorm(d, eps=eps)
        s.mlp = nn.Module()
        s.mlp.fc1 = nn.Linear(d, cfg["mlp"] * d)
        s.mlp.fc2 = nn.Linear(cfg["mlp"] * d, d)
        if cfg["ls"] > 0:
            s.gamma_1 = nn.Parameter(torch.full((d,), cfg["ls"]))
            s.gamma_2 = nn.Parameter(torch.full((d,), cfg["ls"]))

    def forward(s, x, shared):
        g1 = getattr(s, "gamma_1", None)
        a = s.attn(s.norm1(x), shared)
        x = x + (a if g1 is None else s.gamma_1 * a)
        m = s.mlp.fc2(F.gelu(s.mlp.fc1(s.norm2(x))))
        return x + (m if g1 is None else s.gamma_2 * m)


class TimmBeit(nn.Module):
    """timm's Beit (classifier) and the official unilm models (classifier and
    VisionTransformerForMaskedImageModeling) share these names; unilm keeps the
    index buffers in its state dict, newest timm does not."""

    def __init__(s, cfg, persistent_index):
        super().__init__()
        d, p = cfg["dim"], cfg["patch"]
        s.cfg = cfg
        s.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        if cfg["vocab"]:
            s.mask_token = nn.Parameter(torch.zeros(1, 1, d))
        if cfg["abs"]:
            s.pos_embed = nn.Parameter(torch.zeros(1, cfg["grid"] ** 2 + 1, d))
        s.patch_embed = nn.Module()
        s.patch_embed.proj = nn.Conv2d(cfg["ch"], d, p, p)
        if cfg["rel"] == "shared":
            index, rows = rel_index(cfg["grid"])
            s.rel_pos_bias = nn.Module()
            s.rel_pos_bias.relative_position_bias_table = nn.Parameter(torch.zeros(rows, cfg["heads"]))
            s.rel_pos_bias.register_buffer("relative_position_index", index, persistent=persistent_index)
        s.blocks = nn.ModuleList([TimmBlock(cfg, persistent_index) for _ in range(cfg["depth"])])
        if cfg["vocab"] or cfg["pool"] == "cls":
            s.norm = nn.LayerNorm(d, eps=cfg["eps"])
        if cfg["classes"] and cfg["pool"] == "mean":
            s.fc_norm = nn.LayerNorm(d, eps=cfg["eps"])
        if cfg["classes"]:
            s.head = nn.Linear(d, cfg["classes"])
        if cfg["vocab"]:
            s.lm_head = nn.Linear(d, cfg["vocab"])

    def forward(s, img, mask=None):
        x = s.patch_embed.proj(img).flatten(2).transpose(1, 2)
        if mask is not None:
            w = mask.unsqueeze(-1).to(x.dtype)
            x = x * (1 - w) + s.mask_token * w
        x = torch.cat([s.cls_token.expand(x.shape[0], -1, -1), x], 1)
        if s.cfg["abs"]:
            x = x + s.pos_embed
        shared = None
        if s.cfg["rel"] == "shared":
            shared = table_bias(s.rel_pos_bias.relative_position_bias_table, s.rel_pos_bias.relative_position_index)
        for blk in s.blocks:
            x = blk(x, shared)
        if s.cfg["vocab"]:
            return s.lm_head(s.norm(x[:, 1:][mask]))
        if s.cfg["pool"] == "mean":
            return s.head(s.fc_norm(x[:, 1:].mean(1)))
        return s.head(s.norm(x)[:, 0])


# ---------------------------------------------------------------- Hugging Face names
class HFSelfAttention(nn.Module):
    def __init__(s, cfg):
        super().__init__()
        d = cfg["dim"]
        s.heads = cfg["heads"]
        s.query = nn.Linear(d, d)
        s.key = nn.Linear(d, d, bias=False)
        s.value = nn.Linear(d, d)
        if cfg["rel"] == "block":
            s.relative_position_bias = nn.Module()
            s.relative_position_bias.relative_position_bias_table = nn.Parameter(
                torch.zeros(rel_index(cfg["grid"])[1], s.heads))

    def forward(s, x, index, shared):
        b, n, d = x.shape
        split = lambda t: t.reshape(b, n, s.heads, d // s.heads).transpose(1, 2)  # noqa: E731
        q, k, v = split(s.query(x)), split(s.key(x)), split(s.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // s.heads)
        if hasattr(s, "relative_position_bias"):
            scores = scores + table_bias(s.relative_position_bias.relative_position_bias_table, index)
        if shared is not None:
            scores = scores + shared
        return (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d)


class HFLayer(nn.Module):
    def __init__(s, cfg):
        super().__init__()
        d, f, eps = cfg["dim"], cfg["mlp"] * cfg["dim"], cfg["eps"]
        s.attention = nn.Module()
        s.attention.attention = HFSelfAttention(cfg)
        s.attention.output = nn.Module()
        s.attention.output.dense = nn.Linear(d, d)
        s.intermediate = nn.Module()
        s.intermediate.dense = nn.Linear(d, f)
        s.output = nn.Module()
        s.output.dense = nn.Linear(f, d)
        s.layernorm_before = nn.LayerNorm(d, eps=eps)
        s.layernorm_after = nn.LayerNorm(d, eps=eps)
        if cfg["ls"] > 0:
            s.lambda_1 = nn.Parameter(torch.full((d,), cfg["ls"]))
            s.lambda_2 = nn.Parameter(torch.full((d,), cfg["ls"]))

    def forward(s, x, index, shared):
        a = s.attention.output.dense(s.attention.attention(s.layernorm_before(x), index, shared))
        if hasattr(s, "lambda_1"):
            a = s.lambda_1 * a
        x = a + x
        m = s.output.dense(F.gelu(s.intermediate.dense(s.layernorm_after(x))))
        if hasattr(s, "lambda_2"):
            m = s.lambda_2 * m
        return m + x


class HFBeitModel(nn.Module):
    def __init__(s, cfg, pooler):
        super().__init__()
        d = cfg["dim"]
        s.cfg = cfg
        s.embeddings = nn.Module()
        s.embeddings.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        if cfg["vocab"]:
            s.embeddings.mask_token = nn.Parameter(torch.zeros(1, 1, d))
        s.embeddings.patch_embeddings = nn.Module()
        s.embeddings.patch_embeddings.projection = nn.Conv2d(cfg["ch"], d, cfg["patch"], cfg["patch"])
        if cfg["abs"]:
            s.embeddings.position_embeddings = nn.Parameter(torch.zeros(1, cfg["grid"] ** 2 + 1, d))
        s.encoder = nn.Module()
        if cfg["rel"] == "shared":
            s.encoder.relative_position_bias = nn.Module()
            s.encoder.relative_position_bias.relative_position_bias_table = nn.Parameter(
                torch.zeros(rel_index(cfg["grid"])[1], cfg["heads"]))
        s.encoder.layer = nn.ModuleList([HFLayer(cfg) for _ in range(cfg["depth"])])
        if cfg["pool"] == "cls":
            s.layernorm = nn.LayerNorm(d, eps=cfg["eps"])
        if pooler and cfg["pool"] == "mean":
            s.pooler = nn.Module()
            s.pooler.layernorm = nn.LayerNorm(d, eps=cfg["eps"])
        s.index = rel_index(cfg["grid"])[0]

    def forward(s, img, mask=None):
        e = s.embeddings
        x = e.patch_embeddings.projection(img).flatten(2).transpose(1, 2)
        cls = e.cls_token.expand(x.shape[0], -1, -1)
        if s.cfg["abs"]:  # transformers adds positions to the patches before the mask replaces them
            x = x + e.position_embeddings[:, 1:]
            cls = cls + e.position_embeddings[:, :1]
        if mask is not None:
            w = mask.unsqueeze(-1).to(x.dtype)
            x = x * (1 - w) + e.mask_token * w
        x = torch.cat([cls, x], 1)
        shared = None
        if s.cfg["rel"] == "shared":
            shared = table_bias(s.encoder.relative_position_bias.relative_position_bias_table, s.index)
        for layer in s.encoder.layer:
            x = layer(x, s.index, shared)
        if hasattr(s, "layernorm"):
            x = s.layernorm(x)
        return x


class HFBeitForImageClassification(nn.Module):
    def __init__(s, cfg):
        super().__init__()
        s.beit = HFBeitModel(cfg, pooler=True)
        s.classifier = nn.Linear(cfg["dim"], cfg["classes"])

    def forward(s, img, mask=None):
        x = s.beit(img)
        pooled = s.beit.pooler.layernorm(x[:, 1:].mean(1)) if hasattr(s.beit, "pooler") else x[:, 0]
        return s.classifier(pooled)


class HFBeitForMaskedImageModeling(nn.Module):
    def __init__(s, cfg):
        super().__init__()
        s.beit = HFBeitModel(cfg, pooler=False)
        s.layernorm = nn.LayerNorm(cfg["dim"], eps=cfg["eps"])
        s.lm_head = nn.Linear(cfg["dim"], cfg["vocab"])

    def forward(s, img, mask):
        return s.lm_head(s.layernorm(s.beit(img, mask))[:, 1:])[mask]


def hf_config(cfg, names):
    c = {"architectures": ["BeitForImageClassification" if cfg["classes"] else "BeitForMaskedImageModeling"],
         "model_type": "beit", "hidden_size": cfg["dim"], "num_hidden_layers": cfg["depth"],
         "num_attention_heads": cfg["heads"], "intermediate_size": cfg["mlp"] * cfg["dim"], "hidden_act": "gelu",
         "layer_norm_eps": cfg["eps"], "image_size": cfg["grid"] * cfg["patch"], "patch_size": cfg["patch"],
         "num_channels": cfg["ch"], "vocab_size": cfg["vocab"] or 8192, "use_mask_token": bool(cfg["vocab"]),
         "use_absolute_position_embeddings": cfg["abs"], "use_relative_position_bias": cfg["rel"] == "block",
         "use_shared_relative_position_bias": cfg["rel"] == "shared", "layer_scale_init_value": cfg["ls"],
         "use_mean_pooling": cfg["pool"] == "mean" or not cfg["classes"]}
    if cfg["classes"]:
        c["id2label"] = {str(k): v for k, v in enumerate(names)}
        c["label2id"] = {v: k for k, v in enumerate(names)}
    return c


def cfg_from_hf(c):
    return dict(dim=c["hidden_size"], depth=c["num_hidden_layers"], heads=c["num_attention_heads"],
                mlp=c["intermediate_size"] // c["hidden_size"], eps=c["layer_norm_eps"],
                grid=c["image_size"] // c["patch_size"], patch=c["patch_size"], ch=c["num_channels"],
                vocab=c["vocab_size"] if "BeitForMaskedImageModeling" in c["architectures"] else 0,
                classes=len(c.get("id2label", {})) if "BeitForImageClassification" in c["architectures"] else 0,
                abs=c["use_absolute_position_embeddings"],
                rel="shared" if c["use_shared_relative_position_bias"] else "block" if c["use_relative_position_bias"] else "none",
                ls=c["layer_scale_init_value"], pool="mean" if c["use_mean_pooling"] else "cls")


def build(scheme, cfg):
    if scheme == "hf":
        return HFBeitForImageClassification(cfg) if cfg["classes"] else HFBeitForMaskedImageModeling(cfg)
    return TimmBeit(cfg, persistent_index=scheme == "unilm")


# ---------------------------------------------------------------- cases
TINY = dict(dim=32, depth=2, heads=4, mlp=4, grid=4, patch=4, ch=3, vocab=0, classes=5, abs=False, rel="block",
            ls=0.1, pool="mean", eps=1e-6)
CASES = {  # name: (scheme, changes to TINY)
    "timm_cls": ("timm", {}),
    "timm_abs": ("timm", dict(dim=128, heads=2, rel="none", abs=True, ls=0.0, pool="cls")),
    "unilm_mim": ("unilm", dict(rel="shared", vocab=37, classes=0)),
    "hf_cls": ("hf", dict(eps=1e-12)),
    "hf_mim": ("hf", dict(rel="shared", vocab=37, classes=0, eps=1e-12)),
    "hf_abs": ("hf", dict(rel="shared", abs=True, ls=0.0, pool="cls", classes=7)),
}
BASE = dict(dim=768, depth=12, heads=12, mlp=4, grid=14, patch=16, ch=3, vocab=0, classes=1000, abs=False,
            rel="block", ls=0.1, pool="mean", eps=1e-6)
BASE_CASES = {"base_timm": ("timm", {}), "base_hf": ("hf", dict(eps=1e-12))}


def randomize(model, gen):
    """Magnitudes like a trained BEiT (small weights, LayerNorm near 1, visible tables),
    with every tensor random so that every path counts."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.split(".")[-1]
            n = torch.randn(p.shape, generator=gen)
            if "norm" in name and leaf == "weight":
                p.copy_(1 + 0.1 * n)
            elif leaf in ("gamma_1", "gamma_2", "lambda_1", "lambda_2"):
                p.copy_(0.1 + 0.05 * n)
            elif "relative_position_bias_table" in name:
                p.copy_(0.5 * n)
            elif leaf in ("cls_token", "mask_token", "pos_embed", "position_embeddings"):
                p.copy_(0.3 * n)
            elif name.startswith(("head.", "classifier.", "lm_head.")):
                p.copy_((0.3 if leaf == "weight" else 0.1) * n)
            else:
                p.copy_(0.05 * n)


def state(model):
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def make(out_dir, size):
    os.makedirs(out_dir, exist_ok=True)
    cases, base = (BASE_CASES, BASE) if size == "base" else (CASES, TINY)
    for i, (name, (scheme, change)) in enumerate(cases.items()):
        cfg = dict(base, **change)
        gen = torch.Generator().manual_seed(100 + i)
        model = build(scheme, cfg).eval()
        randomize(model, gen)
        b, g = (2 if size == "base" else 3), cfg["grid"]
        img = torch.randn(b, cfg["ch"], g * cfg["patch"], g * cfg["patch"], generator=gen)
        mask = None
        if cfg["vocab"]:
            mask = torch.rand(b, g * g, generator=gen) < 0.4
            mask[:, 0] = True
        with torch.no_grad():
            logits = model(img, mask)
        names = [f"{name} class {k}" for k in range(cfg["classes"])]
        if scheme == "hf":
            os.makedirs(os.path.join(out_dir, name), exist_ok=True)
            stio.save(os.path.join(out_dir, name, "model.safetensors"), state(model), {"format": "pt"})
            with open(os.path.join(out_dir, name, "config.json"), "w") as f:
                json.dump(hf_config(cfg, names), f, indent=2)
        else:
            stio.save(os.path.join(out_dir, name + ".safetensors"), state(model), {"format": "pt"})
        ref = {"in.images": img.numpy(), "out.logits": logits.numpy()}
        if mask is not None:
            ref["in.mask"] = mask.numpy().astype(np.uint8)
        stio.save(os.path.join(out_dir, name + ".ref.safetensors"), ref, {"scheme": scheme})


def cfg_from_state(sd, heads):
    """timm / unilm architecture from the names and shapes (the exporter's file)."""
    d, ch, p, _ = sd["patch_embed.proj.weight"].shape
    depth = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    rel = "shared" if "rel_pos_bias.relative_position_bias_table" in sd else \
        "block" if "blocks.0.attn.relative_position_bias_table" in sd else "none"
    if rel != "none":
        rows = sd["rel_pos_bias.relative_position_bias_table" if rel == "shared" else
                  "blocks.0.attn.relative_position_bias_table"].shape[0]
        grid = (int(round(math.sqrt(rows - 3))) + 1) // 2
    else:
        grid = int(round(math.sqrt(sd["pos_embed"].shape[1] - 1)))
    return dict(dim=d, depth=depth, heads=heads, mlp=sd["blocks.0.mlp.fc1.weight"].shape[0] // d, eps=1e-6, grid=grid,
                patch=p, ch=ch, vocab=sd["lm_head.weight"].shape[0] if "lm_head.weight" in sd else 0,
                classes=sd["head.weight"].shape[0] if "head.weight" in sd else 0, abs="pos_embed" in sd, rel=rel,
                ls=0.1 if "blocks.0.gamma_1" in sd else 0.0, pool="mean" if "fc_norm.weight" in sd else "cls")


def load(jobs):
    for line in open(jobs):
        if not line.strip():
            continue
        scheme, path, ref, out, heads = line.split()
        if scheme == "hf":
            cfg = cfg_from_hf(json.load(open(os.path.join(path, "config.json"))))
            tensors, meta = stio.load(os.path.join(path, "model.safetensors"))
            assert meta.get("format") == "pt", "transformers needs metadata format=pt"
        else:
            tensors, meta = stio.load(path)
            cfg = cfg_from_state(tensors, int(heads))
        model = build(scheme, cfg).eval()
        model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=True)
        r, _ = stio.load(ref)
        mask = torch.from_numpy(r["in.mask"]).bool() if "in.mask" in r else None
        with torch.no_grad():
            logits = model(torch.from_numpy(r["in.images"]), mask)
        stio.save(out, {"out.logits": logits.numpy()})


# ---------------------------------------------------------------- resizing
def unilm_resize(table, src_grid, dst_grid):
    """The procedure of unilm beit/run_class_finetuning.py, re-typed from its description:
    geometric source coordinates found by bisection, scipy interp2d(kind='cubic') per head."""
    from scipy import interpolate
    src, dst = 2 * src_grid - 1, 2 * dst_grid - 1
    extra, body = table[-3:], table[:-3]
    left, right = 1.01, 1.5
    while right - left > 1e-6:
        q = (left + right) / 2.0
        if (1.0 - q ** (src // 2)) / (1.0 - q) > dst // 2:
            right = q
        else:
            left = q
    dis, cur = [], 1
    for i in range(src // 2):
        dis.append(cur)
        cur += q ** (i + 1)
    x = [-d for d in reversed(dis)] + [0] + dis
    t = dst // 2.0
    dx = np.arange(-t, t + 0.1, 1.0)
    cols = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # interp2d is deprecated in SciPy 1.10
        for h in range(table.shape[1]):
            f = interpolate.interp2d(x, x, body[:, h].reshape(src, src), kind="cubic")
            cols.append(torch.Tensor(f(dx, dx)).contiguous().view(-1, 1))
    return np.concatenate([torch.cat(cols, 1).numpy(), extra], 0).astype(np.float32), q


def resize(out):
    gen = torch.Generator().manual_seed(7)
    tensors, meta = {}, {}
    for name, (gs, gd, heads) in {"t4to6": (4, 6, 3), "t14to24": (14, 24, 12), "t14to32": (14, 32, 2),
                                  "t6to4": (6, 4, 2), "t3to8": (3, 8, 2)}.items():
        table = torch.randn((2 * gs - 1) ** 2 + 3, heads, generator=gen).numpy()
        resized, q = unilm_resize(table, gs, gd)
        tensors[f"{name}.in"], tensors[f"{name}.out"] = table, resized
        meta[f"{name}.q"] = repr(q)
    for name, (gs, gd, dim) in {"p4to6": (4, 6, 5), "p6to4": (6, 4, 3), "p14to24": (14, 24, 4)}.items():
        pos = torch.randn(1, gs * gs + 1, dim, generator=gen)
        grid = pos[:, 1:].reshape(1, gs, gs, dim).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(gd, gd), mode="bicubic", align_corners=False)
        res = torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, gd * gd, dim)], 1)
        tensors[f"{name}.in"], tensors[f"{name}.out"] = pos.numpy(), res.numpy()
    stio.save(out, tensors, meta)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "make":
        make(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "tiny")
    elif mode == "load":
        load(sys.argv[2])
    elif mode == "resize":
        resize(sys.argv[2])
    else:
        sys.exit(f"unknown mode {mode}")
