"""PyTorch reference for the dVAE tokenizer (tests/test_dvae.c compares to it).

Our own modules, written from the DALL-E description (spec section 5) with the
dall_e package's parameter names (blocks.input.w, blocks.group_1.block_1.id_path.w,
... res_path.conv_1.w ..., blocks.output.conv.w), float64 autograd.

  dvae_ref.py train OUT SEED S C N_HID N_INIT N_BLK N_GROUPS VOCAB RECON B TAU BETA
      a full dVAE (prefixes "encoder." / "decoder."), an input batch and fixed Gumbel
      noise; outputs the loss, recon, kl, encoder logits and every parameter gradient
      ("grad.<name>").
  dvae_ref.py dalle DIR SEED
      a dall_e-shaped Encoder (n_hid 16, 4 groups x 2 blocks, 32x32x3, vocab 64)
      saved with the dall_e key names (no prefix) + input and logits, and three
      broken copies (missing key, wrong shape, unexpected key).
  dvae_ref.py all DIR
      what tests/test_dvae.c needs in one process (torch starts once): DIR/dvae_laplace
      and DIR/dvae_mse .safetensors (the two train cases below) and the dalle files.
"""
import math
import os
import sys
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402

torch.set_num_threads(1)
EPS = 0.1


class Conv(nn.Module):
    """Conv2d with 'same' padding and DALL-E's init; weights named w and b."""

    def __init__(s, n_in, n_out, k):
        super().__init__()
        s.w = nn.Parameter(torch.randn(n_out, n_in, k, k, dtype=torch.float64) / math.sqrt(n_in * k * k))
        s.b = nn.Parameter(0.1 * torch.randn(n_out, dtype=torch.float64))  # nonzero: tests db
        s.pad = (k - 1) // 2

    def forward(s, x):
        return F.conv2d(x, s.w, s.b, padding=s.pad)


class Block(nn.Module):
    def __init__(s, n_in, n_out, n_layers, encoder):
        super().__init__()
        hid = n_out // 4
        s.post_gain = 1.0 / n_layers ** 2
        s.id_path = Conv(n_in, n_out, 1) if n_in != n_out else nn.Identity()
        ks = [3, 3, 3, 1] if encoder else [1, 3, 3, 3]
        widths = [n_in, hid, hid, hid, n_out]
        layers = []
        for i in range(4):
            layers += [(f"relu_{i + 1}", nn.ReLU()), (f"conv_{i + 1}", Conv(widths[i], widths[i + 1], ks[i]))]
        s.res_path = nn.Sequential(OrderedDict(layers))

    def forward(s, x):
        return s.id_path(x) + s.post_gain * s.res_path(x)


class Net(nn.Module):
    """Encoder (encoder=True: widths n_hid * 2^(g-1), max-pool) or decoder."""

    def __init__(s, encoder, channels, n_hid, n_init, n_blk, n_groups, vocab):
        super().__init__()
        n_layers = n_groups * n_blk
        blocks = OrderedDict()
        blocks["input"] = Conv(channels, n_hid, 7) if encoder else Conv(vocab, n_init, 1)
        width = n_hid if encoder else n_init
        for g in range(1, n_groups + 1):
            wout = n_hid * 2 ** (g - 1) if encoder else n_hid * 2 ** (n_groups - g)
            group = OrderedDict()
            for k in range(1, n_blk + 1):
                group[f"block_{k}"] = Block(width, wout, n_layers, encoder)
                width = wout
            if g < n_groups:
                group["pool" if encoder else "upsample"] = (
                    nn.MaxPool2d(kernel_size=2) if encoder else nn.Upsample(scale_factor=2, mode="nearest"))
            blocks[f"group_{g}"] = nn.Sequential(group)
        out_ch = vocab if encoder else 2 * channels
        blocks["output"] = nn.Sequential(OrderedDict([("relu", nn.ReLU()), ("conv", Conv(width, out_ch, 1))]))
        s.blocks = nn.Sequential(blocks)

    def forward(s, x):
        return s.blocks(x)


def round32(module):
    """Makes the float64 weights exactly the float32 values the C side reads."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.float().double())


def f32(t):
    return t.detach().float().contiguous().numpy()


def losses(enc, dec, x, g, tau, beta, recon, channels, hard=False, usage=False):
    xm = (1 - 2 * EPS) * x + EPS
    logits = enc(xm)
    vocab = logits.shape[1]
    logq = F.log_softmax(logits, dim=1)
    kl_sum = (logq.exp() * (logq + math.log(vocab))).sum()
    z = F.softmax((logits + g) / tau, dim=1)
    if hard:  # straight-through: one-hot forward, the relaxed sample's gradient
        z = F.one_hot(z.argmax(dim=1), vocab).permute(0, 3, 1, 2).to(z.dtype) + z - z.detach()
    out = dec(z)
    mu, lnb = out[:, :channels], out[:, channels:]
    if recon == "laplace":
        t = torch.log(xm / (1 - xm))
        nll = (t - mu).abs() * torch.exp(-lnb) + lnb + math.log(2) + torch.log(xm * (1 - xm))
    else:
        nll = (torch.sigmoid(mu) - xm) ** 2
    rec = nll.mean()
    if usage:  # KL(qbar || uniform) of the batch's mean q, counted once per cell like the per-cell KL
        qbar = logq.exp().mean((0, 2, 3))
        cells = logits.shape[0] * logits.shape[2] * logits.shape[3]
        loss = rec + beta * cells * (qbar * (qbar.log() + math.log(vocab))).sum() / x.numel()
    else:
        loss = rec + beta * kl_sum / x.numel()
    kl = kl_sum / (logits.shape[0] * logits.shape[2] * logits.shape[3])
    return loss, rec, kl, logits


def train_case(argv):
    out, seed = argv[0], int(argv[1])
    S, C, n_hid, n_init, n_blk, n_groups, vocab = (int(v) for v in argv[2:9])
    recon, B, tau, beta = argv[9], int(argv[10]), float(argv[11]), float(argv[12])
    hard, usage = "hard" in argv[13:], "usage" in argv[13:]
    torch.manual_seed(seed)
    enc = Net(True, C, n_hid, n_init, n_blk, n_groups, vocab)
    dec = Net(False, C, n_hid, n_init, n_blk, n_groups, vocab)
    round32(enc), round32(dec)
    side = S >> (n_groups - 1)
    x = torch.rand(B, C, S, S, dtype=torch.float64).float().double()
    u = torch.rand(B, vocab, side, side, dtype=torch.float64).clamp(1e-9, 1 - 1e-9)
    g = (-torch.log(-torch.log(u))).float().double()
    loss, rec, kl, logits = losses(enc, dec, x, g, tau, beta, recon, C, hard, usage)
    loss.backward()
    res = {"x": f32(x), "gumbel": f32(g), "out.logits": f32(logits)}
    for k, v in (("loss", loss), ("recon", rec), ("kl", kl)):
        res[f"out.{k}"] = f32(v.reshape(1))
    for prefix, m in (("encoder.", enc), ("decoder.", dec)):
        for name, p in m.named_parameters():
            res[prefix + name] = f32(p)
            res["grad." + prefix + name] = f32(p.grad)
    stio.save(out, res, {"recon": recon})


def dalle_case(argv):
    d, seed = argv[0], int(argv[1])
    torch.manual_seed(seed)
    enc = Net(True, 3, 16, 8, 2, 4, 64)
    round32(enc)
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64).float().double()
    with torch.no_grad():
        logits = enc((1 - 2 * EPS) * x + EPS)
    sd = {k: f32(v) for k, v in enc.state_dict().items()}
    stio.save(os.path.join(d, "dalle_encoder.safetensors"), sd, {})
    stio.save(os.path.join(d, "dalle_io.safetensors"), {"x": f32(x), "logits": f32(logits)}, {})
    missing = dict(sd)
    del missing["blocks.group_2.block_1.id_path.b"]
    stio.save(os.path.join(d, "dalle_missing.safetensors"), missing, {})
    bad = dict(sd)
    bad["blocks.group_3.block_2.res_path.conv_2.w"] = np.ascontiguousarray(bad["blocks.group_3.block_2.res_path.conv_2.w"][:, :, :1, :])
    stio.save(os.path.join(d, "dalle_badshape.safetensors"), bad, {})
    extra = dict(sd)
    extra["blocks.group_1.block_1.res_path.conv_5.w"] = sd["blocks.group_1.block_1.res_path.conv_4.w"]
    stio.save(os.path.join(d, "dalle_extra.safetensors"), extra, {})


# the cases of tests/test_dvae.c: S C n_hid n_init n_blk n_groups vocab recon B tau beta [hard] [usage]
TEST_CASES = {"laplace": "16 1 8 12 2 3 32 laplace 3 0.7 1.5", "mse": "8 3 8 8 1 2 16 mse 2 1.3 0.5",
              "hard": "16 3 8 12 1 3 32 laplace 3 0.5 1.5 hard", "usage": "16 3 8 12 1 3 32 laplace 3 0.5 1.5 hard usage"}


def all_cases(argv):
    d = argv[0]
    for tag, spec in TEST_CASES.items():
        train_case([os.path.join(d, f"dvae_{tag}.safetensors"), "3"] + spec.split())
    dalle_case([d, "5"])


if __name__ == "__main__":
    {"train": train_case, "dalle": dalle_case, "all": all_cases}[sys.argv[1]](sys.argv[2:])
