"""PyTorch side of the benchmark: the reference BEiT (tests/ref/beit_ref.py) or the
reference dVAE encoder (tests/ref/dvae_ref.py) timed on the same workload as
`beit bench`, printing the same last line (without the FLOP rate).

usage: ref_bench.py --workload pretrain|finetune|infer|tokenize --model tiny --image-size 28
                    --channels 1 --patch-size 4 --batch 64 --threads 2 --steps 10 [--warmup 2]
                    [--recompute] [--json]
For tokenize, --model names the dVAE (small, dalle) and --image-size / --channels
default to its own; weights are random (DALL-E's init), float32, no autograd.
Timing as ../shared/bench/bench_torch.py's: --warmup untimed steps, then the median of
the timed steps' times; --json adds its 'RESULT {json}' line (images_per_s, peak_rss_mib,
step_times_s, ...), which bench/compare.py reads.
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
from beit_ref import Beit, loss_of  # noqa: E402

PRESETS = {"micro": (32, 2, 2), "mini": (96, 4, 3), "demo": (128, 6, 4), "tiny": (192, 12, 3),
           "small": (384, 12, 6), "base": (768, 12, 12), "large": (1024, 24, 16)}
# dVAE: image size, channels, n_hid, n_init, blocks per group, groups, vocab (src/model/dvae.c)
TOKENIZERS = {"small": (28, 1, 32, 64, 1, 3, 512), "dalle": (112, 3, 256, 128, 2, 4, 8192)}


def beit_step(a):
    """A closure running one step of a pretrain / finetune / infer workload."""
    dim, depth, heads = PRESETS[a.model]
    task = "mim" if a.workload == "pretrain" else "classify"
    cfg = dict(task=task, img=a.image_size, ch=a.channels, patch=a.patch_size, dim=dim, depth=depth, heads=heads,
               ls=0.1, vocab=a.vocab, classes=a.classes, shared=task == "mim")
    model = Beit(cfg)
    if a.recompute:  # as `beit bench --recompute`: each block's activations recomputed in the backward pass
        from torch.utils.checkpoint import checkpoint
        for blk in model.blocks:
            blk.forward = lambda *args, f=blk.forward: checkpoint(f, *args, use_reentrant=False)
    g = a.image_size // a.patch_size
    img = torch.randn(a.batch, a.channels, a.image_size, a.image_size)
    k = int(0.4 * g * g + 0.5)
    mask = torch.zeros(a.batch, g * g, dtype=torch.bool)
    mask[:, [(q * g * g) // k for q in range(k)]] = True
    tokens = torch.randint(0, a.vocab, (a.batch, g * g))
    labels = torch.randint(0, a.classes, (a.batch,))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)

    def step():
        if a.workload == "infer":
            with torch.no_grad():
                x = model.encode(img, None)
                model.head(model.fc_norm(x[:, 1:].mean(1)))
            return
        opt.zero_grad(set_to_none=True)
        loss_of(model, cfg, img, mask, tokens, labels, None).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 3.0)
        opt.step()
    return step


def tokenize_step(a):
    """A closure encoding one batch to token grids: map_pixels, encoder, argmax."""
    from dvae_ref import EPS, Net  # here, so the BEiT workloads' RSS does not include it; it sets 1 thread
    size, channels, n_hid, n_init, n_blk, n_groups, vocab = TOKENIZERS[a.model]
    size, channels = a.image_size or size, a.channels or channels
    enc = Net(True, channels, n_hid, n_init, n_blk, n_groups, vocab).float().eval()
    img = torch.rand(a.batch, channels, size, size)

    def step():
        with torch.no_grad():
            enc((1 - 2 * EPS) * img + EPS).argmax(dim=1)
    return step


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", default="pretrain")
    ap.add_argument("--model", default=None)
    for k, d in [("image-size", 0), ("channels", 0), ("patch-size", 4), ("batch", 64), ("threads", 2),
                 ("steps", 10), ("warmup", 2), ("vocab", 8192), ("classes", 10)]:
        ap.add_argument(f"--{k}", type=int, default=d)
    ap.add_argument("--recompute", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.workload == "tokenize":
        a.model = a.model or "small"
        step = tokenize_step(a)
    else:
        a.model, a.image_size, a.channels = a.model or "tiny", a.image_size or 28, a.channels or 1
        step = beit_step(a)
    torch.set_num_threads(a.threads)
    times = []
    for i in range(a.warmup + a.steps):
        t = time.perf_counter()
        step()
        if i >= a.warmup:
            times.append(time.perf_counter() - t)
    med = statistics.median(times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
    print(f"{1e3 * med:.1f} ms/step, median of {a.steps} steps after {a.warmup} warm-up steps")
    if a.json:
        print("RESULT " + json.dumps(dict(workload=a.workload, model=a.model, batch=a.batch, warmup=a.warmup,
                                          steps=a.steps, step_times_s=times, median_step_s=med,
                                          images_per_s=a.batch / med, peak_rss_mib=rss,
                                          torch_threads=torch.get_num_threads())), flush=True)
    print(f"{a.workload} {a.model}: {a.batch / med:.1f} img/s, peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
