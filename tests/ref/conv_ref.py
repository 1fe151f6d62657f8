"""PyTorch reference for the tokenizer kernels (tests/test_conv.c compares to it).

For each conv case "B,IC,H,W,OC,K,stride,pad,groups,bias" given on the command line
it draws inputs, weights and an upstream gradient, runs F.conv2d and autograd, and
saves everything as c<i>.{x,w,b,dout,out,dx,dw,db}. It also writes one max-pool
(odd sizes), one nearest-upsample and one ReLU case (pool.*, up.*, relu.*).

usage: conv_ref.py OUT.safetensors SEED CASE [CASE ...]
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402

torch.set_num_threads(1)


def grads(out, dout, *leaves):
    out.backward(dout)
    return [t.grad for t in leaves]


def conv_case(tag, spec, res):
    B, IC, H, W, OC, K, s, p, g, has_bias = spec
    x = torch.randn(B, IC, H, W, dtype=torch.float64, requires_grad=True)
    w = (torch.randn(OC, IC // g, K, K, dtype=torch.float64) * 0.3).requires_grad_()
    b = (torch.randn(OC, dtype=torch.float64) * 0.5).requires_grad_() if has_bias else None
    out = F.conv2d(x, w, b, stride=s, padding=p, groups=g)
    dout = torch.randn_like(out)
    leaves = [x, w] + ([b] if has_bias else [])
    gr = grads(out, dout, *leaves)
    res.update({f"{tag}.x": x, f"{tag}.w": w, f"{tag}.dout": dout, f"{tag}.out": out,
                f"{tag}.dx": gr[0], f"{tag}.dw": gr[1]})
    if has_bias:
        res.update({f"{tag}.b": b, f"{tag}.db": gr[2]})


def simple_case(tag, fn, shape, res):
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    out = fn(x)
    dout = torch.randn_like(out)
    (dx,) = grads(out, dout, x)
    res.update({f"{tag}.x": x, f"{tag}.dout": dout, f"{tag}.out": out, f"{tag}.dx": dx})


def main():
    path, seed, cases = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    torch.manual_seed(seed)
    res = {}
    for i, c in enumerate(cases):
        conv_case(f"c{i}", [int(v) for v in c.split(",")], res)
    simple_case("pool", lambda x: F.max_pool2d(x, kernel_size=2), (2, 3, 7, 9), res)
    simple_case("up", lambda x: F.interpolate(x, scale_factor=2, mode="nearest"), (2, 3, 4, 5), res)
    simple_case("relu", F.relu, (3, 5, 7), res)
    arrays = {k: v.detach().float().contiguous().numpy() for k, v in res.items()}
    stio.save(path, arrays, {"seed": str(seed)})


if __name__ == "__main__":
    main()
