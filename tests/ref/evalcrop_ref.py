"""Independent reference for the eval transform (tests/test_eval.c compares):
timm's Resize(floor(size / crop_pct)) of the shorter side + CenterCrop(size), with
torch's antialiased bicubic (PIL's filter, a = -0.5) on float pixels, clamped to
[0, 1] (beit.c keeps floats where PIL would round to uint8), then normalised.
Each case: a random uint8 HWC image, the settings, the expected CHW output.
usage: evalcrop_ref.py OUT.safetensors
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402

torch.set_num_threads(1)
rng = np.random.default_rng(19)
# (h, w, c, size, crop_pct, mean, std): a model-size image at 0.875 (the finding: it
# must be resized to 32 and cropped, not passed through), a non-square upscale, an
# RGB downscale, and a wide image with odd offsets
CASES = [
    (28, 28, 1, 28, 0.875, 0.1307, 0.3081),
    (20, 30, 1, 16, 0.9, 0.5, 0.5),
    (64, 48, 3, 32, 0.875, 0.0, 1.0),
    (37, 101, 3, 24, 0.95, 0.2, 0.7),
]
T = {}
for k, (h, w, c, size, crop_pct, mean, std) in enumerate(CASES):
    img = rng.integers(0, 256, (h, w, c), dtype=np.uint8)
    s = math.floor(size / np.float32(crop_pct) + 1e-9)
    nh, nw = (s * h // w, s) if w <= h else (s, s * w // h)  # torchvision: the longer side truncated
    x = torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1)[None]
    y = F.interpolate(x, size=(nh, nw), mode="bicubic", antialias=True, align_corners=False)[0]
    top, left = int(round((nh - size) / 2.0)), int(round((nw - size) / 2.0))
    y = y[:, top:top + size, left:left + size].clamp(0, 1)
    y = (y - mean) / std
    T[f"case{k}.image"] = img.astype(np.int64)
    T[f"case{k}.settings"] = np.array([size, crop_pct, mean, std], dtype=np.float32)
    T[f"case{k}.out"] = y.numpy().astype(np.float32)
T["cases"] = np.array([len(CASES)], dtype=np.int64)
stio.save(sys.argv[1], T)
