"""st_fixture.py - fixtures for tests/test_safetensors.c, written with stio.py.

  st_fixture.py write DIR   py_types.safetensors: F32/F16/BF16/F64/I64/I32/U8
                            tensors (specials, subnormals, every F16 and BF16 bit
                            pattern) with metadata; py_expect.safetensors: what
                            numpy says each float tensor is as float32.
  st_fixture.py check DIR   reads c_written.safetensors (written by the C test)
                            and checks it against c_written.bin (the raw float32
                            values) and the names/shapes/metadata below; exits 1
                            on any mismatch.
"""
import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402

META = {"format": "pt", "unicode": "\u00fcn\u00ef \u2713 \U0001F600",
        "escapes": "q\"b\\s\n\tend"}

# what the C test writes (keep in sync with tests/test_safetensors.c)
C_TENSORS = [("patch_embed.proj.weight", [8, 3, 4, 4]), ("cls_token", [1, 1, 8]),
             ("blocks.0.norm1.bias", [8]), ("scalar", []), ("empty", [0, 5]),
             ("specials", [12])]
C_META = {"epoch": "3", "note": "quote \" backslash \\ newline \n tab \t ctrl \x01 \u00fc \u2713"}


def float_specials():
    return np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1.1754942e-38,
                     1.17549435e-38, 3.4028235e38, -3.4028235e38, 1.0 / 3.0], np.float32)


def write(out):
    rng = np.random.default_rng(1234)
    f32 = np.concatenate([float_specials(), rng.normal(0, 10, 18).astype(np.float32)]).reshape(3, 10)
    f16_specials = np.array([0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x7BFF, 0xFBFF,
                             0x7C00, 0xFC00, 0x7E00, 0x3555], np.uint16).view(np.float16)
    f16 = np.concatenate([f16_specials, rng.normal(0, 3, 20).astype(np.float16)]).reshape(4, 8)
    f16_all = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16)
    bf16 = stio.BF16.from_float32(np.concatenate(
        [float_specials(), rng.normal(0, 1e-3, 12).astype(np.float32)]).reshape(2, 3, 4))
    bf16_all = stio.BF16(np.arange(65536, dtype=np.uint32).astype(np.uint16))
    f64 = np.array([0.0, -0.0, 1e-50, 1e-40, -1e-40, 1e300, -1e300, 3.4028235e38,
                    3.4028235677973366e38, 3.4028235677973362e38, np.inf, np.nan,
                    np.pi, 1.0 + 2.0 ** -24, 1.0 + 3 * 2.0 ** -25, 2.0 ** -149 * 0.5000001], np.float64)
    tensors = {
        "blocks.0.attn.qkv.weight": f32, "f16": f16, "f16_all": f16_all, "bf16": bf16,
        "bf16_all": bf16_all, "f64": f64,
        "i64": np.array([0, 1, -1, 2 ** 62, -2 ** 63, 2 ** 63 - 1, 123456789012], np.int64),
        "i32": np.array([[0, -1, 2 ** 31 - 1], [-2 ** 31, 7, 42]], np.int32),
        "u8": np.array([0, 255, 7], np.uint8),
        "scalar": np.array(3.5, np.float32), "empty": np.zeros((2, 0), np.float32),
    }
    with np.errstate(over="ignore"):
        expect = {k: (v.to_float32() if isinstance(v, stio.BF16) else v.astype(np.float32))
                  for k, v in tensors.items() if k in ("blocks.0.attn.qkv.weight", "f16", "f16_all",
                                                       "bf16", "bf16_all", "f64", "scalar")}
    stio.save(os.path.join(out, "py_types.safetensors"), tensors, META)
    stio.save(os.path.join(out, "py_expect.safetensors"), expect)
    # round trip through stio itself
    back, meta = stio.load(os.path.join(out, "py_types.safetensors"))
    assert meta == META and list(back) == list(tensors)
    print("st_fixture: wrote py_types.safetensors and py_expect.safetensors")


def fail(msg):
    print("st_fixture check: FAIL " + msg)
    sys.exit(1)


def check(out):
    path = os.path.join(out, "c_written.safetensors")
    raw = np.fromfile(os.path.join(out, "c_written.bin"), dtype="<u4")
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    if (8 + n) % 8:
        fail(f"header length {n} leaves the data unaligned")
    text = buf[8:8 + n].decode("utf-8")
    body = text.rstrip(" ")
    if not body.endswith("}") or len(text) - len(body) >= 8:
        fail("header is not the JSON object padded with fewer than 8 spaces")
    order = list(json.loads(text).keys())
    want_order = ["__metadata__"] + [name for name, _ in C_TENSORS]
    if order != want_order:
        fail(f"key order {order} != {want_order}")
    tensors, meta = stio.load(path)
    stored = meta.pop(stio.CRC_KEY, None)
    if stored != stio.content_crc32(path):
        fail(f"checksum {stio.CRC_KEY} = {stored!r}, the content gives {stio.content_crc32(path)}")
    if meta != C_META:
        fail(f"metadata {meta!r} != {C_META!r}")
    pos = 0
    for name, shape in C_TENSORS:
        a = tensors[name]
        if a.dtype != np.float32 or list(a.shape) != shape:
            fail(f"{name}: {a.dtype} {list(a.shape)}, expected float32 {shape}")
        want = raw[pos:pos + a.size]
        pos += a.size
        if not np.array_equal(a.reshape(-1).view("<u4"), want):
            fail(f"{name}: values differ from c_written.bin")
    if pos != raw.size:
        fail(f"c_written.bin has {raw.size} floats, tensors hold {pos}")
    print(f"st_fixture check: ok ({len(C_TENSORS)} tensors, {pos} floats bit-exact, metadata, order and checksum match)")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("write", "check"):
        print("usage: st_fixture.py write|check DIR")
        sys.exit(2)
    write(sys.argv[2]) if sys.argv[1] == "write" else check(sys.argv[2])
