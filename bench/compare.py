"""beit.c against PyTorch in its fastest configuration, one workload at a time, in one run.

bench/run.sh runs this (see there for the environment variables). For each workload, one process after
the other, never two at once: `beit bench`, then the PyTorch side with the same model, batch and threads,
run as ../shared/bench/README.md says is fastest (Debian's torch with OpenBLAS's OpenMP build through
LD_LIBRARY_PATH, so torch's OpenMP pool and BLAS share threads) and given the OpenBLAS kernel set beit.c
runs (OPENBLAS_CORETYPE). The PyTorch side is
  shared       ../shared/bench/bench_torch.py's own config and code (bench/torch_baseline.py runs its
               child() with THREADS threads): the tiny, small and BEiT-B MIM steps, BEiT-B inference;
  shared model bench_torch.py's code on beit_ref.BEiT at the product's sizes (mini), BEiT-B at batch 1;
  ref_bench    bench/ref_bench.py, this project's same-model reference in the same configuration, where
               bench_torch.py has no such step (fine-tuning, --recompute, the dVAE encoder). A check row
               times it on the tiny MIM step as well, beside bench_torch.py, so every run shows whether the
               two PyTorch programs agree.
Prints a header (date, CPU, ISA, BLAS and kernels of each side, threads, load) and one table, and writes
the same as JSON.
"""
import datetime
import json
import os
import re
import socket
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.join(ROOT, "bench")
THREADS = int(os.environ.get("THREADS", "2"))
STEPS = int(os.environ.get("STEPS", "5"))
QUICK = os.environ.get("BENCH_QUICK", "0") == "1"
PYTHON = os.environ.get("PYTHON", "/usr/bin/python3")
TORCH_LIB = os.environ.get("BENCH_TORCH_LIB", "/usr/lib/x86_64-linux-gnu/openblas-openmp")
SHARED = os.path.abspath(os.environ.get("BENCH_SHARED", os.path.join(ROOT, "..", "shared", "bench")))

TINY = "--model tiny --image-size 28 --channels 1 --patch-size 4 --batch 64"
SMALL = "--model small --image-size 32 --channels 3 --patch-size 4 --batch 64"
BASE = "--model base --image-size 224 --channels 3 --patch-size 16"
MINI28 = "--model mini --image-size 28 --channels 1 --patch-size 7 --batch 256"  # `beit demo`
MINI32 = "--model mini --image-size 32 --channels 3 --patch-size 4 --batch 256"  # CIFAR-10
KMEANS = "--vocab 512"  # the default tokenizer's vocabulary (k-means, 512 codes)

# label, `beit bench` flags, PyTorch side: shared config name | "model" (beit_ref at these sizes) | "ref"
ROWS = [
    ("pretrain tiny 28x28x1 p4 b64", "--workload pretrain " + TINY, "fmnist-tiny"),
    ("pretrain small 32x32x3 p4 b64", "--workload pretrain " + SMALL, "cifar-small"),
    ("pretrain mini 28x28x1 p7 b256", f"--workload pretrain {MINI28} {KMEANS}", "model"),
    ("finetune mini 28x28x1 p7 b256", "--workload finetune " + MINI28, "ref"),
    ("pretrain mini 32x32x3 p4 b256", f"--workload pretrain {MINI32} {KMEANS}", "model"),
    ("finetune mini 32x32x3 p4 b256", "--workload finetune " + MINI32, "ref"),
    ("pretrain tiny --recompute", "--workload pretrain --recompute " + TINY, "ref"),
    ("pretrain small --recompute", "--workload pretrain --recompute " + SMALL, "ref"),
    ("pretrain base 224x224x3 p16 b8", f"--workload pretrain {BASE} --batch 8 --masked 75", "base-224"),
    ("infer base 224x224x3 p16 b8", f"--workload infer {BASE} --batch 8 --classes 1000", "base-224"),
    ("infer base 224x224x3 p16 b1", f"--workload infer {BASE} --batch 1 --classes 1000", "base-224"),
    ("tokenize dVAE small 28x28x1 b64", "--workload tokenize --model small --image-size 28 --channels 1 --batch 64",
     "ref"),
]
CHECK = "pretrain tiny 28x28x1 p4 b64"  # the row whose PyTorch side ref_bench.py also runs
SIDE = {"ref": "ref_bench", "model": "shared model"}
BEIT_LINE = re.compile(r"^\S+ \S+: ([0-9.]+) img/s, ([0-9.]+) GFLOP/s, peak RSS ([0-9.]+) MiB$", re.M)
SGEMM_LINE = re.compile(r"^sgemm: ([0-9.]+) GFLOP/s", re.M)


class Failed(Exception):
    pass


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(v) for v in f.read().split()[:3]]


def run(cmd, env):
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    out = p.stdout + p.stderr
    if p.returncode:
        last = [l for l in out.splitlines() if l.strip()]
        prog = os.path.basename(cmd[1] if cmd[0] == PYTHON else cmd[0])
        raise Failed(f"{prog} exit {p.returncode}: {last[-1] if last else '(no output)'}")
    return out


def tagged(out, tag):
    """The JSON of the last line starting with 'TAG '."""
    lines = [l[len(tag) + 1:] for l in out.splitlines() if l.startswith(tag + " ")]
    if not lines:
        raise Failed(f"no {tag} line in the output")
    return json.loads(lines[-1])


def last_match(pattern, out, prog):
    found = list(pattern.finditer(out))
    if not found:
        last = [l for l in out.splitlines() if l.strip()]
        raise Failed(f"{prog}: no result line in its output ({last[-1] if last else 'none'})")
    return found[-1]


def flag(flags, name, default=None):
    f = flags.split()
    return f[f.index(name) + 1] if name in f else default


def env_pairs(name):
    """The KEY=VALUE words of environment variable NAME, as a dict."""
    pairs = {}
    for kv in os.environ.get(name, "").split():
        k, eq, v = kv.partition("=")
        if not k or not eq:
            raise Failed(f"{name}: '{kv}' is not KEY=VALUE")
        pairs[k] = v
    return pairs


class Bench:
    def __init__(self, beit):
        self.beit = beit
        self.beit_env = {k: v for k, v in os.environ.items()
                         if k not in ("OPENBLAS_CORETYPE", "BEIT_REEXEC", "BEIT_BLAS_PICKED", "BEIT_WAIT_PICKED")}
        self.beit_env.update(env_pairs("BENCH_BEIT_ENV"))  # e.g. an AVX2-only run: OPENBLAS_CORETYPE=Haswell
        self.version = run([beit, "version"], self.beit_env)
        core = re.search(r"^BLAS: .*kernels (\w+)", self.version, re.M)
        self.core = core[1] if core else None
        env = {k: v for k, v in self.beit_env.items() if not k.startswith("BEIT_")}
        env["LD_LIBRARY_PATH"] = TORCH_LIB + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
        if self.core:  # the kernels beit.c runs, also when it had to override OpenBLAS's detection
            env["OPENBLAS_CORETYPE"] = self.core
        env.update(env_pairs("BENCH_TORCH_ENV"))
        self.torch_env = env

    def beit_bench(self, flags):
        out = run([self.beit, "bench", *flags.split(), "--threads", str(THREADS), "--steps", str(STEPS)],
                  self.beit_env)
        m = last_match(BEIT_LINE, out, "beit bench")
        return dict(images_per_s=float(m[1]), gflops=float(m[2]), peak_rss_mib=float(m[3]),
                    line=m[0], steps=STEPS, warmup=1)

    def torch_side(self, flags, side):
        common = ["--threads", str(THREADS), "--steps", str(STEPS)]
        if side == "ref":
            out = run([PYTHON, os.path.join(HERE, "ref_bench.py"), *flags.split(), *common, "--json"],
                      self.torch_env)
            return dict(script="bench/ref_bench.py", result=tagged(out, "RESULT"))
        cfg = [] if side == "model" else ["--config", side]
        out = run([PYTHON, os.path.join(HERE, "torch_baseline.py"), "--shared", SHARED, *flags.split(), *cfg,
                   *common], self.torch_env)
        return dict(script=os.path.join(SHARED, "bench_torch.py"), config=tagged(out, "CONFIG"),
                    result=tagged(out, "RESULT"))

    def probe(self):
        out = run([PYTHON, os.path.join(HERE, "torch_baseline.py"), "--shared", SHARED, "--probe",
                   "--threads", str(THREADS)], self.torch_env)
        return tagged(out, "PROBE")

    def sgemm(self):
        out = run([self.beit, "bench", "--workload", "sgemm", "--threads", str(THREADS)], self.beit_env)
        return float(last_match(SGEMM_LINE, out, "beit bench --workload sgemm")[1])


def ratio(a, b):
    return a / b if a is not None and b else None


def num(v, fmt="{:.1f}"):
    return fmt.format(v) if v is not None else "-"


ROW = "{:<34} {:>8} {:>7} {:>6} {:>7} | {:>8} {:>7} {:<12} | {:>6} {:>6}{}"


def print_row(r, sgemm):
    if r.get("error"):
        print(f"{r['label']:<34} FAILED: {r['error']}")
        return
    b, t = r["beit"], r["torch"]["result"]
    note = ""
    if flag(r["flags"], "--batch") == "1":
        note = f"  latency {1e3 / b['images_per_s']:.1f} ms, PyTorch {1e3 / t['images_per_s']:.1f} ms"
    print(ROW.format(r["label"] + (" *" if r["torch"].get("config", {}).get("differences") else ""),
                     num(b["images_per_s"]), num(b["gflops"]), num(ratio(100 * b["gflops"], sgemm), "{:.0f}%"),
                     num(b["peak_rss_mib"], "{:.0f}"), num(t["images_per_s"]), num(t["peak_rss_mib"], "{:.0f}"),
                     r["torch"]["side"], num(r["speed"], "{:.2f}"), num(r["memory"], "{:.2f}"), note))


def header(facts, version, probe, load, sgemm, beit):
    isa = re.search(r"^ISA: (.*)$", version, re.M)
    flags = [f for f in ("avx2", "fma", "avx512f") if facts.get(f)]
    blas = re.search(r"^BLAS: (.*)$", version, re.M)
    ob = probe["openblas"]
    print(f"date:      {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, host {socket.gethostname()}")
    print(f"CPU:       {facts['model_name']} (family/model {facts['cpu_family_model']}), {facts['cpus']} CPUs, "
          f"hypervisor {facts['hypervisor']}; flags {' '.join(flags) or 'none of avx2 fma avx512f'}")
    print(f"ISA:       beit.c " + (isa[1] if isa else f"(no ISA line in `beit version`: CPU flags {' '.join(flags)})")
          + f"; PyTorch's own kernels {probe['cpu_capability']}")
    print(f"beit.c:    {beit}; BLAS {blas[1] if blas else '?'}")
    print(f"PyTorch:   torch {probe['torch']}, python {probe['python']}; BLAS "
          + ("; ".join(f"{b['config']}, kernels {b['kernels']} ({b['path']})" for b in ob) or
             "no OpenBLAS loaded: " + " ".join(probe["libraries"])))
    print(f"           env {' '.join(f'{k}={v}' for k, v in probe['env'].items())}")
    print(f"threads:   {THREADS} each side; {STEPS} timed steps (beit bench: mean after 1 warm-up step; PyTorch: "
          f"median after 2)")
    busy = "  (not quiet: do not publish these figures)" if load[0] >= 0.5 else ""
    print(f"load:      {' '.join(f'{v:.2f}' for v in load)} before the run{busy}")
    print(f"sgemm:     {sgemm:.1f} GFLOP/s (beit bench --workload sgemm: best of five 1536^3, same BLAS and threads)")


def footnotes(rows):
    for r in rows:
        diff = r.get("torch", {}).get("config", {}).get("differences")
        if diff:
            print(f"* {r['label']}: the shared config {r['torch']['config']['shared']} differs from beit bench's "
                  "model in " + ", ".join(f"{k} (beit.c {v[0]}, PyTorch {v[1]})" for k, v in diff.items()))


def check_note(check):
    if not check:
        return
    if check.get("error"):
        print(f"check: ref_bench.py on the tiny MIM step FAILED: {check['error']}")
        return
    a, b = check["bench_torch"], check["ref_bench"]
    print(f"check: tiny MIM step, PyTorch by bench_torch.py {a['images_per_s']:.1f} img/s "
          f"(steps {a['range'][0]:.1f}-{a['range'][1]:.1f}), by ref_bench.py {b['images_per_s']:.1f} img/s "
          f"(steps {b['range'][0]:.1f}-{b['range'][1]:.1f}): ratio {check['ratio']:.3f}, "
          f"{'within' if check['overlap'] else 'OUTSIDE'} each other's step range")


def step_range(res):
    rates = [res["batch"] / t for t in res["step_times_s"]]
    return [min(rates), max(rates)]


def main():
    beit = sys.argv[1]
    if not os.path.isfile(os.path.join(SHARED, "bench_torch.py")):
        sys.exit(f"bench: {SHARED}/bench_torch.py not found (the shared repository beside this one, "
                 "or set BENCH_SHARED)")
    if not os.path.isdir(TORCH_LIB):
        sys.exit(f"bench: {TORCH_LIB} not found (install libopenblas0-openmp, or set BENCH_TORCH_LIB)")
    sys.path.insert(0, SHARED)
    import bench_torch  # noqa: E402 (only its machine_facts(); nothing is timed in this process)
    failed = False
    try:
        b = Bench(beit)
        load = loadavg()
        probe, sgemm = b.probe(), b.sgemm()
    except Failed as e:
        sys.exit(f"bench: {e}")
    facts = bench_torch.machine_facts()
    header(facts, b.version, probe, load, sgemm, beit)
    print()
    print(ROW.format("", "beit.c", "", "", "", "PyTorch", "", "", "beit.c/PyTorch", "", ""))
    print(ROW.format("workload", "img/s", "GFLOP/s", "%sgemm", "RSS MiB", "img/s", "RSS MiB", "side", "speed",
                     "memory", ""))
    rows, check = [], None
    for label, flags, side in ROWS:
        if QUICK and "--model base" in flags:
            continue
        r = dict(label=label, flags=flags, loadavg_before=loadavg())
        try:
            r["beit"] = b.beit_bench(flags)
            r["beit"]["sgemm_share"] = r["beit"]["gflops"] / sgemm
            r["torch"] = dict(b.torch_side(flags, side), side=SIDE.get(side, "shared"))
            t = r["torch"]["result"]
            r["speed"] = ratio(r["beit"]["images_per_s"], t["images_per_s"])
            r["memory"] = ratio(r["beit"]["peak_rss_mib"], t["peak_rss_mib"])
        except Failed as e:
            r["error"], failed = str(e), True
        rows.append(r)
        print_row(r, sgemm)
        sys.stdout.flush()
        if label == CHECK and not r.get("error"):
            try:
                ref = b.torch_side(flags, "ref")["result"]
                sh = r["torch"]["result"]
                a, c = step_range(sh), step_range(ref)
                check = dict(label=label, bench_torch=dict(images_per_s=sh["images_per_s"], range=a,
                                                           peak_rss_mib=sh["peak_rss_mib"]),
                             ref_bench=dict(images_per_s=ref["images_per_s"], range=c,
                                            peak_rss_mib=ref["peak_rss_mib"]),
                             ratio=ref["images_per_s"] / sh["images_per_s"],
                             overlap=a[0] <= c[1] and c[0] <= a[1], result=ref)
            except Failed as e:
                check, failed = dict(error=str(e)), True
    print()
    footnotes(rows)
    check_note(check)
    now = datetime.datetime.now()
    path = os.environ.get("BENCH_JSON") or os.path.join(
        HERE, "results", f"{now:%Y-%m-%d-%H%M}-{socket.gethostname()}.json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    with open(path, "w") as f:
        json.dump(dict(date=now.astimezone().isoformat(timespec="seconds"), host=socket.gethostname(),
                       machine=facts, beit=dict(path=os.path.abspath(beit), version=b.version,
                                                repo_head=head.stdout.strip()),
                       torch=dict(probe, shared=SHARED), threads=THREADS, steps=STEPS, quick=QUICK,
                       loadavg_before=load, sgemm_gflops=sgemm, rows=rows, check=check), f, indent=1)
    print(f"results: {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
