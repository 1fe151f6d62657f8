"""Independent reference for RandAugment's ops (tests/test_randaug.c compares):
each of timm's 15 ops of rand_augment_transform's increasing list (and the plain
Posterize/Solarize/enhance levels of inc0) done by PIL itself, as timm's
auto_augment.py calls it: ImageOps, ImageEnhance, Image.rotate / Image.transform
(AFFINE) with bicubic resampling and the fill colour. The level arguments follow
timm's level functions at magnitude M (both signs for the signed ops).
usage: randaug_ref.py OUT.safetensors
"""
import os
import sys

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402

M = 9.0
FILL = (124, 116, 104)
BICUBIC = Image.BICUBIC


def level(op, m, neg, inc):
    s = -1 if neg else 1
    lv = m / 10.0
    if op == "Rotate":
        return s * lv * 30.0
    if op in ("Color", "Contrast", "Brightness", "Sharpness"):
        return max(0.1, 1.0 + s * lv * 0.9) if inc else lv * 1.8 + 0.1
    if op in ("ShearX", "ShearY"):
        return s * lv * 0.3
    if op in ("TranslateXRel", "TranslateYRel"):
        return s * lv * 0.45
    if op == "Posterize":
        return 4 - int(lv * 4) if inc else int(lv * 4)
    if op == "Solarize":
        return 256 - int(lv * 256) if inc else int(lv * 256)
    if op == "SolarizeAdd":
        return int(lv * 110)
    return None


def apply(img, op, arg):
    fill = FILL if img.mode == "RGB" else FILL[0]
    kw = dict(resample=BICUBIC, fillcolor=fill)
    if op == "AutoContrast":
        return ImageOps.autocontrast(img)
    if op == "Equalize":
        return ImageOps.equalize(img)
    if op == "Invert":
        return ImageOps.invert(img)
    if op == "Rotate":
        return img.rotate(arg, **kw)
    if op == "Posterize":
        return img if arg >= 8 else ImageOps.posterize(img, arg)
    if op == "Solarize":
        return ImageOps.solarize(img, arg)
    if op == "SolarizeAdd":
        lut = [min(255, i + arg) if i < 128 else i for i in range(256)]
        return img.point(lut * (3 if img.mode == "RGB" else 1))
    if op == "Color":
        return ImageEnhance.Color(img).enhance(arg)
    if op == "Contrast":
        return ImageEnhance.Contrast(img).enhance(arg)
    if op == "Brightness":
        return ImageEnhance.Brightness(img).enhance(arg)
    if op == "Sharpness":
        return ImageEnhance.Sharpness(img).enhance(arg)
    w, h = img.size
    m = {"ShearX": (1, arg, 0, 0, 1, 0), "ShearY": (1, 0, 0, arg, 1, 0),
         "TranslateXRel": (1, 0, arg * w, 0, 1, 0), "TranslateYRel": (1, 0, 0, 0, 1, arg * h)}[op]
    return img.transform(img.size, Image.AFFINE, m, **kw)


OPS = ["AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd", "Color",
       "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel"]

rng = np.random.default_rng(18)


def image(h, w, c):
    """Smooth structure (so that resampling matters) plus noise, not the full 0..255 range."""
    y, x = np.mgrid[0:h, 0:w]
    base = 60 + 50 * np.sin(x / 3.0)[..., None] + 40 * np.cos(y / 4.0)[..., None] + np.arange(c) * 20
    return np.clip(base + rng.normal(0, 12, (h, w, c)), 0, 255).astype(np.uint8)


T = {}
k = 0
for (h, w, c) in [(24, 24, 3), (13, 17, 1), (19, 32, 3)]:
    img = image(h, w, c)
    pil = Image.fromarray(img[..., 0] if c == 1 else img, "L" if c == 1 else "RGB")
    for oi, op in enumerate(OPS):
        for inc in (1, 0):
            for neg in (0, 1):
                arg = level(op, M, neg, inc)
                out = np.asarray(apply(pil, op, arg)).reshape(h, w, c)
                T[f"case{k}.image"] = img.astype(np.int64)
                T[f"case{k}.args"] = np.array([oi, neg, inc], dtype=np.int64)
                T[f"case{k}.out"] = out.astype(np.int64)
                k += 1
T["cases"] = np.array([k], dtype=np.int64)
T["magnitude"] = np.array([M], dtype=np.float32)
T["fill"] = np.array(FILL, dtype=np.int64)
stio.save(sys.argv[1], T)
