"""Do bench/ref_bench.py and ../shared/bench/bench_torch.py do the same work? One tiny MIM step (28x28x1
patch 4, width 192, 12 blocks, batch 64) of each under torch.profiler: calls and FLOPs of every op where
they differ, and of the matrix products. Counts, not times: it runs on a busy machine too.

usage: /usr/bin/python3 bench/same_work.py [SHARED_DIR (default ../shared/bench)]
"""
import argparse
import importlib.util
import os
import sys

import torch
from torch.profiler import ProfilerActivity, profile

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "shared", "bench"))
SHOWN = ("aten::mm", "aten::addmm", "aten::bmm", "aten::conv2d", "aten::native_layer_norm", "aten::gelu",
         "aten::_softmax", "aten::norm")


def load(name, path):  # both references are called beit_ref.py: load them under two names
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def shared_step():  # bench_torch.child(): train mode on fmnist-tiny
    S = load("shared_beit_ref", os.path.join(SHARED, "beit_ref.py"))
    cfg = S.CONFIGS["fmnist-tiny"]
    model = S.BEiT(**cfg, mode="mim")
    model.train()
    opt = torch.optim.AdamW(S.param_groups(model, 0.05), lr=1.5e-3, betas=(0.9, 0.999))
    x, mask, labels = S.random_batch(cfg, cfg["batch_size"], torch.Generator().manual_seed(1))

    def step():
        opt.zero_grad(set_to_none=True)
        model(x, mask, labels).backward()
        opt.step()
    return step


def ref_step():  # ref_bench.py --workload pretrain --model tiny --image-size 28 --channels 1 --patch-size 4
    rb = load("ref_bench", os.path.join(HERE, "ref_bench.py"))
    a = argparse.Namespace(workload="pretrain", model="tiny", image_size=28, channels=1, patch_size=4, batch=64,
                              vocab=8192, classes=10, recompute=False)
    return rb.beit_step(a)


def main():
    torch.set_num_threads(1)
    ops = {}
    for name, make in [("bench_torch", shared_step), ("ref_bench", ref_step)]:
        step = make()
        step()  # warm-up: AdamW's state exists from here
        with profile(activities=[ProfilerActivity.CPU], with_flops=True) as p:
            step()
        ops[name] = {e.key: (e.count, e.flops) for e in p.key_averages()}
    a, b = ops["bench_torch"], ops["ref_bench"]
    keys = sorted(set(a) | set(b), key=lambda k: (-max(a.get(k, (0, 0))[1], b.get(k, (0, 0))[1]), k))
    print(f"{'op':34s} {'bench_torch calls':>17s} {'GFLOP':>8s} | {'ref_bench calls':>15s} {'GFLOP':>8s}")
    for k in keys:
        x, y = a.get(k, (0, 0)), b.get(k, (0, 0))
        if k in SHOWN or x[1] or y[1] or (x[0] != y[0] and k.startswith("aten::") and "detach" not in k):
            print(f"{k:34s} {x[0]:17d} {x[1] / 1e9:8.3f} | {y[0]:15d} {y[1] / 1e9:8.3f}")
    products = ("aten::mm", "aten::addmm", "aten::bmm", "aten::conv2d")
    same = all(a.get(k) == b.get(k) for k in products)
    print("matrix products and convolutions (" + ", ".join(products) + "): bench_torch "
          f"{sum(a.get(k, (0, 0))[1] for k in products) / 1e9:.3f} GFLOP, ref_bench "
          f"{sum(b.get(k, (0, 0))[1] for k in products) / 1e9:.3f} GFLOP per step; calls and FLOPs "
          + ("the same" if same else "DIFFERENT"))
    return 0 if same else 1

if __name__ == "__main__":
    sys.exit(main())
