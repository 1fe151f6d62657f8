"""The shared PyTorch baseline, ../shared/bench/bench_torch.py (unedited), on one `beit bench` workload.

bench_torch.py times each (config, mode) in a child process of its own, always with 2 threads, and only
has the configs of beit_ref.CONFIGS. This script is that child: it runs bench_torch.child() in this
process with --threads threads, on
  - the shared config named by --config, unchanged (the baseline; the flags must describe the same
    model, and every difference is reported in the CONFIG line), with the batch of --batch, or
  - without --config, beit_ref's model at the size the flags give (the product's small models),
    registered in beit_ref.CONFIGS under a new name.
It prints 'CONFIG {json}' (the config run, its name, the differences) and bench_torch's 'RESULT {json}'.

usage: torch_baseline.py --shared DIR --workload pretrain|infer --model tiny --image-size 28 --channels 1
                         --patch-size 4 --batch 64 [--vocab 8192] [--classes 10] [--config fmnist-tiny]
                         --threads 2 --steps 5 [--warmup 2]
       torch_baseline.py --shared DIR --probe --threads 2     'PROBE {json}': torch and the BLAS it runs
"""
import argparse
import ctypes
import json
import os
import sys

# (dim, depth, heads) of src/model/config.c's presets
PRESETS = {"micro": (32, 2, 2), "mini": (96, 4, 3), "demo": (128, 6, 4), "tiny": (192, 12, 3),
           "small": (384, 12, 6), "base": (768, 12, 12), "large": (1024, 24, 16)}
# the keys that define the work of each mode (the mask and vocabulary do not exist in inference)
KEYS = {"train": ("img_size", "in_chans", "patch_size", "dim", "depth", "num_heads", "vocab_size", "num_mask"),
        "infer": ("img_size", "in_chans", "patch_size", "dim", "depth", "num_heads", "num_classes")}


def config_of(a):
    """beit_ref's config for the workload `beit bench` runs with these flags (cmd_bench.c: 40% masked,
    rounded half up)."""
    dim, depth, heads = PRESETS[a.model]
    n = (a.image_size // a.patch_size) ** 2
    return dict(img_size=a.image_size, in_chans=a.channels, patch_size=a.patch_size, dim=dim, depth=depth,
                num_heads=heads, vocab_size=a.vocab, num_mask=a.masked or int(0.4 * n + 0.5), num_classes=a.classes,
                batch_size=a.batch)


def probe(threads):
    """torch's version and the BLAS libraries this process loaded, with OpenBLAS's own kernel report."""
    import torch
    torch.set_num_threads(threads)
    x = torch.randn(256, 256)
    (x @ x).sum()  # loads and starts the BLAS
    with open("/proc/self/maps") as f:
        libs = sorted({l.split()[-1] for l in f if l.split()[-1].startswith("/")})
    libs = [p for p in libs if any(k in os.path.basename(p) for k in ("blas", "lapack", "mkl", "omp"))]
    blas = []
    for p in libs:
        try:
            lib = ctypes.CDLL(p)
            core, cfg = lib.openblas_get_corename, lib.openblas_get_config
        except (OSError, AttributeError):
            continue
        core.restype = cfg.restype = ctypes.c_char_p
        found = dict(path=p, kernels=core().decode(), config=cfg().decode())
        if all((b["kernels"], b["config"]) != (found["kernels"], found["config"]) for b in blas):
            blas.append(found)  # libblas.so.3 and liblapack.so.3 are the same OpenBLAS: once
    show = torch.__config__.show()
    cap = next((l.split(":", 1)[1].strip() for l in show.splitlines() if "CPU capability usage" in l), "?")
    env = {k: os.environ[k] for k in ("LD_LIBRARY_PATH", "OPENBLAS_CORETYPE", "OMP_NUM_THREADS",
                                      "OMP_WAIT_POLICY", "ATEN_CPU_CAPABILITY") if k in os.environ}
    print("PROBE " + json.dumps(dict(torch=torch.__version__, python=sys.version.split()[0],
                                     threads=torch.get_num_threads(), cpu_capability=cap,
                                     libraries=libs, openblas=blas, env=env)), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", required=True, help="the folder of bench_torch.py and beit_ref.py")
    ap.add_argument("--probe", action="store_true")
    ap.add_argument("--workload", default="pretrain", choices=("pretrain", "infer"))
    ap.add_argument("--model", default="tiny", choices=sorted(PRESETS))
    ap.add_argument("--config", default=None, help="the shared config this workload is (beit_ref.CONFIGS)")
    for k, d in [("image-size", 28), ("channels", 1), ("patch-size", 4), ("batch", 64), ("threads", 2),
                 ("steps", 5), ("warmup", 2), ("vocab", 8192), ("classes", 10), ("masked", 0)]:
        ap.add_argument(f"--{k}", type=int, default=d)
    a = ap.parse_args()
    sys.path.insert(0, os.path.abspath(a.shared))
    import beit_ref
    import bench_torch
    if os.path.dirname(os.path.abspath(beit_ref.__file__)) != os.path.abspath(a.shared):
        raise SystemExit(f"torch_baseline: imported {beit_ref.__file__}, not the one in {a.shared}")
    bench_torch.THREADS = a.threads
    if a.probe:
        return probe(a.threads)
    mode = "train" if a.workload == "pretrain" else "infer"
    want = config_of(a)
    if a.config:
        if a.config not in beit_ref.CONFIGS:
            raise SystemExit(f"torch_baseline: no config '{a.config}' in {a.shared}/beit_ref.py")
        cfg = dict(beit_ref.CONFIGS[a.config], batch_size=a.batch)
        name = a.config if a.batch == beit_ref.CONFIGS[a.config]["batch_size"] else f"{a.config}-b{a.batch}"
    else:
        cfg, name = want, f"{a.model}-{a.image_size}x{a.image_size}x{a.channels}-p{a.patch_size}-b{a.batch}"
    beit_ref.CONFIGS[name] = cfg  # bench_torch.child() imports the same module object
    diff = {k: [want[k], cfg[k]] for k in KEYS[mode] if want[k] != cfg[k]}
    print("CONFIG " + json.dumps(dict(name=name, shared=a.config, config=cfg, differences=diff)), flush=True)
    bench_torch.child(name, mode, a.steps, a.warmup)


if __name__ == "__main__":
    main()
