#!/usr/bin/env python3
"""The records of scripts/reproduce, and docs/results.md + docs/results.json made from them.

  results_md.py --record OUT.json --run-dir DIR --id ID --arm ARM --regime R --seed S --dataset D -- CMD...
      one finished run's record: its command, seed, minutes, and its summary.json (pretrain,
      finetune, linprobe) or `beit tokenizer eval`'s figures (tokenizers)
  results_md.py --choose RESULTS ID...
      of a finished grid (every ID recorded), the point with the best validation top-1, printed
      as "RECIPE LR" (nothing while any ID is missing)
  results_md.py --write RUNS --md docs/results.md --json docs/results.json [--beit build/beit]
      the tables, curves and JSON from RUNS/*/*.json only

Every number in docs/results.md comes from those records: nothing is typed in by hand but the
paper's ImageNet figures, which have a table of their own."""
import argparse, glob, json, math, os, re, shutil, statistics, subprocess, sys, tempfile

ARMS = [  # key in results.json, label, the ids of its runs at seed S (the seed-0 grid for beit/scratch)
    ("beit", "BEiT (VQ tokens, blockwise masks)"),
    ("scratch", "scratch (epoch-matched, own grid, timm init)"),
    ("random_mask", "BEiT, random masking"),
    ("pixel", "BEiT, pixel regression"),
    ("kmeans", "BEiT, k-means tokens"),
]
PAPER = [  # BEiT paper, ImageNet-1k, ViT-B/16, 300 (or 800) pretraining epochs; NOT comparable to ours
    ("BEiT-B, 224 px", "83.2", "Table 1"),
    ("BEiT-B, 300 ep", "82.86", "Table 4"),
    ("BEiT-B, random masking, 300 ep", "82.77", "Table 4"),
    ("BEiT-B, pixel regression, 300 ep", "81.04", "Table 4"),
    ("DeiT-B from scratch", "81.8", "Table 1"),
    ("BEiT-B linear probe (block 9)", "56.7", "Table 9"),
]


ANCHORS = [  # published CIFAR-10 figures on GPUs with far longer schedules (the results issue cites them)
    ("ViT from scratch, strong augmentation, 100 epochs (9 blocks, width 192, patch 4)", "93.58",
     "Vision Transformer for Small-Size Datasets"),
    ("ViT from scratch (the same repository's baseline)", "77.7", "yjh0410/MAE"),
    ("ViT after MAE pretraining on CIFAR-10 (400 + 50 epochs)", "89.4", "yjh0410/MAE"),
]


def write_json_atomic(path, obj):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def tokenizer_eval(path):
    """`codes used N/V (P%), perplexity X, MAE Y, PSNR Z dB` (MAE/PSNR may read n/a)"""
    line = open(path).read().strip()
    m = re.search(r"codes used (\d+)/(\d+) \(([\d.]+)%\), perplexity ([\d.]+)", line)
    if not m:
        sys.exit(f"results_md.py: {path}: not a `beit tokenizer eval` line: {line!r}")
    out = {"codes_used": int(m[1]), "vocab": int(m[2]), "codes_share": float(m[3]) / 100, "perplexity": float(m[4])}
    for key, pat in (("mae", r"MAE ([\d.]+)"), ("psnr_db", r"PSNR ([\d.]+) dB")):
        mm = re.search(pat, line)
        out[key] = float(mm[1]) if mm else None
    out["line"] = line
    return out


def record(a, cmd):
    secs = 0
    sec_file = os.path.join(a.run_dir, "reproduce-seconds.txt")
    if os.path.exists(sec_file):
        secs = sum(int(x) for x in open(sec_file).read().split())
    rec = {"id": a.id, "arm": a.arm, "regime": a.regime, "seed": int(a.seed), "dataset": a.dataset,
           "command": " ".join(cmd), "minutes": round(secs / 60, 2), "cpu": cpu_model(), "threads": os.cpu_count()}
    builds_file = os.path.join(a.run_dir, "reproduce-builds.txt")
    if os.path.exists(builds_file):  # each piece of a resumed run, in order, once each
        rec["builds"] = list(dict.fromkeys(open(builds_file).read().split()))
    load_file = os.path.join(a.run_dir, "reproduce-load.txt")
    if os.path.exists(load_file):  # the 1-minute load average at the start and end of each piece
        rec["load_avg"] = [float(x) for x in open(load_file).read().split()]
    summary = os.path.join(a.run_dir, "summary.json")
    if os.path.exists(summary):
        rec["summary"] = json.load(open(summary))
    elif os.path.exists(os.path.join(a.run_dir, "eval.txt")):
        rec["tokenizer"] = tokenizer_eval(os.path.join(a.run_dir, "eval.txt"))
    else:
        sys.exit(f"results_md.py: {a.run_dir}: neither summary.json nor eval.txt (did the run finish?)")
    write_json_atomic(a.record, rec)


def load(path):
    with open(path) as f:
        return json.load(f)


def val_of(rec):
    s = rec.get("summary", {})
    return s.get("val_top1")


def best_on_val(recs):
    """the record with the best validation top-1; of equals, the first id in alphabetical order (one rule for
    the choice reproduce makes and for the write-up)"""
    return max(sorted(recs, key=lambda r: r["id"]), key=lambda r: val_of(r) if val_of(r) is not None else -1)


def choose(results, ids):
    recs = []
    for i in ids:
        p = os.path.join(results, i + ".json")
        if not os.path.exists(p):
            return  # the grid is not finished: nothing is chosen yet
        recs.append(load(p))
    best = best_on_val(recs)
    m = re.search(r"-s\d+-([a-z]+)-(.+)$", best["id"])
    print(m[1], m[2])


# ---- the write-up ----------------------------------------------------------------------------
def pct(x):
    """summary.json holds shares (log.jsonl's convention); the write-up percent"""
    return None if x is None else 100 * x


def mean_std(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None, None
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else None)


def fmt(m, s, n):
    if m is None:
        return "-"
    return f"{m:.2f} ± {s:.2f} (n={n})" if s is not None else f"{m:.2f} (n={n})"


def grid_of(recs, prefix):
    """seed-0 grid points of an arm: ids PREFIX-s0-RECIPE-LR"""
    return sorted((r for i, r in recs.items() if re.fullmatch(re.escape(prefix) + r"-s0-[a-z]+-.+", i)),
                  key=lambda r: r["id"])


def arm_runs(recs, ft_prefix, arm):
    """the fine-tuning records of one arm, one per seed: seed 0 is the grid's best on validation
    (when the arm has a grid), the other seeds their own run"""
    out = {}
    grid = grid_of(recs, ft_prefix)
    if grid:
        out[0] = best_on_val(grid)
    for i, r in recs.items():
        if re.fullmatch(re.escape(ft_prefix) + r"-s\d+", i):
            out[r["seed"]] = r
    return [out[s] for s in sorted(out)]


def pretrain_minutes(recs, arm, seed):
    pt = {"beit": "pt-beit", "random_mask": "pt-random_mask", "pixel": "pt-pixel", "kmeans": "pt-kmeans"}.get(arm)
    r = recs.get(f"{pt}-s{seed}") if pt else None
    return r["minutes"] if r else 0


def regime_table(recs, regime_prefix):
    """{arm: {test_top1: [...], val_top1: [...], seeds, runs, minutes}} for one regime"""
    res = {}
    for arm, _ in ARMS:
        runs = arm_runs(recs, f"{regime_prefix}-{arm}", arm)
        if not runs:
            continue
        res[arm] = {
            "test_top1": [pct(r["summary"].get("test_top1")) for r in runs],
            "val_top1": [pct(r["summary"].get("val_top1")) for r in runs],
            "seeds": [r["seed"] for r in runs],
            "runs": [r["id"] for r in runs],
            "best_epoch": [r["summary"].get("best_epoch") for r in runs],
            "minutes": [round(r["minutes"] + pretrain_minutes(recs, arm, r["seed"]), 1) for r in runs],
            "commands": [r["command"] for r in runs],
        }
    return res


def seeds_to_separate(a, b):
    """seeds per arm for a two-sided t-test at 5% to find the observed difference with 80% power"""
    ma, sa = mean_std(a)
    mb, sb = mean_std(b)
    if sa is None or sb is None or ma is None or mb is None or ma == mb:
        return None
    var = (sa * sa + sb * sb) / 2
    return max(2, math.ceil(2 * (1.96 + 0.84) ** 2 * var / (ma - mb) ** 2))


def curves(recs_by_ds, beit, outdir):
    """validation top-1 per epoch of each arm's seed-0 run, drawn by `beit plot` from the records
    (each written out as a log.jsonl of its own)"""
    if not beit or not os.path.exists(beit):
        return []
    made = []
    for ds, recs in recs_by_ds.items():
        tmp = tempfile.mkdtemp()
        dirs = []
        for arm, _ in ARMS:
            runs = arm_runs(recs, f"ft-{arm}", arm)
            if not runs:
                continue
            d = os.path.join(tmp, arm)
            os.makedirs(d)
            with open(os.path.join(d, "log.jsonl"), "w") as f:
                for e in runs[0]["summary"].get("epochs", []):
                    if e.get("val_top1") is not None:
                        f.write(json.dumps({"epoch": e["epoch"], "step": e["epoch"], "val_top1": e["val_top1"]}) + "\n")
            dirs.append(d)
        if dirs:
            out = os.path.join(tmp, "plot")
            p = subprocess.run([beit, "plot", *dirs, "--fields", "val_top1", "--out", out], capture_output=True, text=True)
            png = os.path.join(out, "val_top1.png")
            if p.returncode == 0 and os.path.exists(png):
                os.makedirs(outdir, exist_ok=True)
                dst = os.path.join(outdir, f"{ds}-val-top1.png")
                shutil.copy(png, dst)
                # the caption without the temporary folders; the x axis is the epoch (written as its step)
                caption = p.stdout.strip().replace(png, os.path.basename(dst)).replace(tmp + "/", "")
                made.append((ds, dst, caption.replace("x = step", "x = epoch")))
        shutil.rmtree(tmp, ignore_errors=True)
    return made


def superseded_note(folder):
    """Records replaced by a run made again (its tokenizer or encoder was lost with another machine's runs
    folder, scripts/reproduce): named, so that a changed figure is not a silent one."""
    old = sorted(glob.glob(os.path.join(folder, "superseded", "*.json")))
    if not old:
        return ""
    ids = sorted({load(p)["id"] for p in old})
    return (f" {len(old)} earlier record(s) of {', '.join(ids)} were superseded by runs made again and are kept in "
            "`superseded/`; the tokenizers and pretrained encoders the runs used are in `weights/`.")


def write(a):
    recs_by_ds = {}
    for p in sorted(glob.glob(os.path.join(a.write, "*", "*.json"))):
        r = load(p)
        recs_by_ds.setdefault(r["dataset"], {})[r["id"]] = r
    doc = {"protocol": {
        "validation": "a class-balanced split of the training set (--val-split, --split-seed 0) held out of "
                      "pretraining and fine-tuning; recipe, lr and best epoch chosen on it (an lr grid whose best point "
                      "is at one of its ends grows by one lr past that end, x2 or /2, up to twice)",
        "test": "evaluated once per run, at its end, on the weights of the best validation epoch",
        "seeds": "mean ± sample std over seeds; seed 0 of beit/scratch is its grid's best point on validation",
        "scratch": "as many optimizer steps as pretraining + fine-tuning, its own recipe x lr grid, timm init, "
                   "no layer decay",
        "ablations": "fine-tuned with BEiT's chosen recipe and lr",
    }, "tokenizers": {}}
    md = ["# Results", "",
          "Generated by `scripts/results_md.py` from the run records in `docs/results/runs/` (written by "
          "`scripts/reproduce`); do not edit by hand. Protocol: " + doc["protocol"]["validation"] + "; the test "
          "split " + doc["protocol"]["test"] + ". Scratch: " + doc["protocol"]["scratch"] + ". Ablations: " +
          doc["protocol"]["ablations"] + ". Mean ± sample standard deviation over seeds. Minutes are wall time on "
          "the machine named; each record's load_avg (the 1-minute load at the start and end of each piece of "
          "the run) says whether other work shared it: above the thread count, the minutes are inflated.", ""]
    for ds, recs in sorted(recs_by_ds.items()):
        cpus = sorted({r["cpu"] for r in recs.values()})
        md += [f"## {ds}", "", f"Runs: {len(recs)}, on {', '.join(cpus)} ({max(r['threads'] for r in recs.values())} "
               "threads)." + superseded_note(os.path.join(a.write, ds)), ""]
        toks = {r["id"]: r["tokenizer"] for r in recs.values() if "tokenizer" in r}
        if toks:
            doc["tokenizers"][ds] = toks
            md += ["| tokenizer | codes used | perplexity | MAE | PSNR | minutes | trained on |",
                   "|---|---:|---:|---:|---:|---:|---|"]
            for i, t in sorted(toks.items()):
                # a tokenizer trained before `tokenizer train --val-split` existed saw the validation images
                held_out = "--val-split" in recs[i].get("command", "")
                md.append(f"| {i} | {t['codes_used']}/{t['vocab']} ({100 * t['codes_share']:.1f}%) | "
                          f"{t['perplexity']:.1f} | {t['mae'] if t['mae'] is not None else 'n/a'} | "
                          f"{t['psnr_db'] if t['psnr_db'] is not None else 'n/a'} | {recs[i]['minutes']:.1f} | "
                          + ("the training split less the validation split" if held_out else
                             "**the whole training split, validation images included** (no labels)") + " |")
            md.append("")
        for key, prefix, title in ((ds, "ft", "all training labels"), (ds + "_4k", "ft4k", "400 labels per class")):
            table = regime_table(recs, prefix)
            if not table:
                continue
            doc[key] = table
            md += [f"### {title}", "", "| arm | test top-1 % | val top-1 % | per seed (test) | minutes per seed "
                   "(pretrain + fine-tune) |", "|---|---:|---:|---|---|"]
            for arm, label in ARMS:
                if arm not in table:
                    continue
                t = table[arm]
                md.append(f"| {label} | {fmt(*mean_std(t['test_top1']), len(t['test_top1']))} | "
                          f"{fmt(*mean_std(t['val_top1']), len(t['val_top1']))} | "
                          f"{', '.join(f'{x:.2f}' for x in t['test_top1'])} | {', '.join(map(str, t['minutes']))} |")
            md.append("")
            if "beit" in table:
                for arm, label in ARMS[1:]:
                    if arm not in table:
                        continue
                    d = statistics.mean(table["beit"]["test_top1"]) - statistics.mean(table[arm]["test_top1"])
                    n = seeds_to_separate(table["beit"]["test_top1"], table[arm]["test_top1"])
                    md.append(f"- BEiT − {label}: {d:+.2f} points (test, means)" +
                              (f"; seeds per arm to tell this difference apart (t-test, 5%, power 80%): {n}" if n else ""))
                md.append("")
            for arm in ("beit", "scratch"):
                grid = grid_of(recs, f"{prefix}-{arm}")
                if grid:
                    md += [f"Grid of `{arm}` at seed 0 (validation top-1 %, the chosen point in bold; test not shown):", ""]
                    best = best_on_val(grid)
                    for r in grid:
                        v = pct(val_of(r))
                        s = f"{r['id']}: {v:.2f}" if v is not None else f"{r['id']}: -"
                        md.append(f"- **{s}**" if r is best else f"- {s}")
                    md.append("")
        probes = {i: r for i, r in recs.items() if r["arm"].startswith("linprobe")}
        if probes:
            md += ["### linear probe", "", "| encoder | test top-1 % | val top-1 % |", "|---|---:|---:|"]
            doc.setdefault(ds + "_probe", {})
            for i, r in sorted(probes.items()):
                s = r["summary"]
                doc[ds + "_probe"][r["arm"]] = {"test_top1": [pct(s.get("test_top1"))], "val_top1": [pct(s.get("val_top1"))]}
                md.append(f"| {i} | {fmt(pct(s.get('test_top1')), None, 1)} | {fmt(pct(s.get('val_top1')), None, 1)} |")
            md.append("")
    for ds, png, caption in curves(recs_by_ds, a.beit, os.path.join(os.path.dirname(a.md), "results")):
        md += [f"![{ds}: validation top-1 per epoch]({os.path.relpath(png, os.path.dirname(a.md))})", "",
               "`beit plot`: " + caption.replace("\n", "; "), ""]
    md += ["## The paper's numbers (ImageNet-1k, ViT-B/16: not comparable to the tables above)", "",
           "| model | top-1 % | source |", "|---|---:|---|"] + [f"| {m} | {v} | BEiT paper, {s} |" for m, v, s in PAPER]
    md += ["", "## Published CIFAR-10 anchors (GPU, far longer schedules: for scale, not a comparison)", "",
           "| model | top-1 % | source |", "|---|---:|---|"] + [f"| {m} | {v} | {s} |" for m, v, s in ANCHORS]
    if not recs_by_ds:
        md += ["", "No run has finished yet: `scripts/reproduce --data cifar10:DIR` makes them."]
    with open(a.md + ".tmp", "w") as f:
        f.write("\n".join(md) + "\n")
    os.replace(a.md + ".tmp", a.md)
    write_json_atomic(a.json, doc)


def main():
    argv = sys.argv[1:]
    cmd = []
    if "--" in argv:
        cmd = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    ap = argparse.ArgumentParser()
    ap.add_argument("--record"), ap.add_argument("--run-dir"), ap.add_argument("--id"), ap.add_argument("--arm")
    ap.add_argument("--regime"), ap.add_argument("--seed"), ap.add_argument("--dataset")
    ap.add_argument("--choose", nargs="+")
    ap.add_argument("--write"), ap.add_argument("--md"), ap.add_argument("--json")
    ap.add_argument("--beit", default=os.path.join(os.path.dirname(__file__), "..", "build", "beit"))
    a = ap.parse_args(argv)
    if a.record:
        record(a, cmd)
    elif a.choose:
        choose(a.choose[0], a.choose[1:])
    elif a.write:
        write(a)
    else:
        ap.error("one of --record, --choose, --write")


if __name__ == "__main__":
    main()
