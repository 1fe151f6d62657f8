"""stio.py - a tiny pure-Python (struct + json + numpy) safetensors reader and
writer, so the PyTorch reference scripts can write fixtures and read what the C
code wrote without the safetensors package. BF16 is carried as uint16 bits (BF16).

    import sys; sys.path.insert(0, "<root>/tests/ref"); import stio
    stio.save(path, {"w": np.ones((2, 3), np.float32)}, {"format": "pt"})
    tensors, metadata = stio.load(path)
"""
import json
import struct
import zlib

import numpy as np

# metadata key of beit.c's content checksum (src/io/safetensors.h)
CRC_KEY = "beit.crc32"

HEADER_MAX = 100 << 20

# safetensors dtype name -> little-endian numpy dtype (BF16 is read as raw bits)
DTYPES = {
    "F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "F64": np.dtype("<f8"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "U8": np.dtype("u1"),
    "BF16": np.dtype("<u2"),
}
NAMES = {("f", 4): "F32", ("f", 2): "F16", ("f", 8): "F64",
         ("i", 8): "I64", ("i", 4): "I32", ("u", 1): "U8"}


class BF16:
    """A bfloat16 tensor, held as its uint16 bit patterns."""

    def __init__(self, bits):
        self.bits = np.ascontiguousarray(bits, dtype=np.uint16)

    @staticmethod
    def from_float32(a):
        """Rounds float32 to bfloat16, to nearest even; NaN stays NaN."""
        u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
        rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
        nan = np.isnan(np.asarray(a, dtype=np.float32))
        bits = np.where(nan, (u >> 16) | 0x40, rounded).astype(np.uint16)
        return BF16(bits)

    def to_float32(self):
        return (self.bits.astype(np.uint32) << 16).view(np.float32)


def _dtype_name(a):
    if isinstance(a, BF16):
        return "BF16"
    name = NAMES.get((a.dtype.kind, a.dtype.itemsize))
    if name is None:
        raise ValueError(f"stio: unsupported dtype {a.dtype}")
    return name


def _raw(a):
    if isinstance(a, BF16):
        return a.bits.shape, a.bits.astype("<u2").tobytes()
    name = _dtype_name(a)
    return a.shape, np.ascontiguousarray(a, dtype=DTYPES[name]).tobytes()


def _canonical_crc(metadata, items):
    """beit.c's content checksum: zlib crc32 over the metadata pairs except the
    checksum's own (key order, key NUL value NUL), then the tensors (name order,
    name NUL dtype NUL comma-joined dims NUL raw bytes). items: name -> (dtype,
    shape, bytes). Keys sort by their UTF-8 bytes, as C's strcmp does."""
    crc = 0
    for k in sorted(metadata, key=lambda x: x.encode()):
        if k != CRC_KEY:
            crc = zlib.crc32(k.encode() + b"\0" + metadata[k].encode() + b"\0", crc)
    for name in sorted(items, key=lambda x: x.encode()):
        dtype, shape, blob = items[name]
        dims = ",".join(str(int(d)) for d in shape)
        crc = zlib.crc32(name.encode() + b"\0" + dtype.encode() + b"\0" + dims.encode() + b"\0", crc)
        crc = zlib.crc32(blob, crc)
    return "%08x" % crc


def content_crc32(path):
    """The checksum of a file's content, computed from its bytes (compare with
    metadata CRC_KEY)."""
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", None) or {}
    data = buf[8 + n:]
    items = {name: (e["dtype"], e["shape"], data[e["data_offsets"][0]:e["data_offsets"][1]])
             for name, e in header.items()}
    return _canonical_crc(metadata, items)


def save(path, tensors, metadata=None, checksum=False):
    """Writes tensors (name -> ndarray or BF16) in dict order, then metadata;
    checksum=True adds beit.c's content checksum to the metadata."""
    header, blobs, offset, items = {}, [], 0, {}
    metadata = {str(k): str(v) for k, v in (metadata or {}).items()}
    if metadata or checksum:
        header["__metadata__"] = metadata
    for name, a in tensors.items():
        if not isinstance(a, BF16):
            a = np.asarray(a)
        dtype = _dtype_name(a)
        shape, blob = _raw(a)
        header[name] = {"dtype": dtype, "shape": [int(d) for d in shape],
                        "data_offsets": [offset, offset + len(blob)]}
        items[name] = (dtype, shape, blob)
        blobs.append(blob)
        offset += len(blob)
    if checksum:
        metadata[CRC_KEY] = _canonical_crc(metadata, items)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def _no_duplicates(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError(f"stio: duplicate key {k!r}")
        d[k] = v
    return d


def load(path, bf16_as_float32=True):
    """Returns (tensors, metadata) with tensors in header order; BF16 comes back
    as float32 (exact) or, with bf16_as_float32=False, as a BF16 object."""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 8:
        raise ValueError(f"{path}: file too short")
    (n,) = struct.unpack("<Q", buf[:8])
    if n > HEADER_MAX or n > len(buf) - 8:
        raise ValueError(f"{path}: bad header length {n}")
    header = json.loads(buf[8:8 + n].decode("utf-8"), object_pairs_hook=_no_duplicates)
    if not isinstance(header, dict):
        raise ValueError(f"{path}: header is not an object")
    data = buf[8 + n:]
    metadata = header.pop("__metadata__", None) or {}
    tensors = {}
    for name, e in header.items():
        dt = DTYPES[e["dtype"]]
        shape = tuple(int(d) for d in e["shape"])
        begin, end = (int(x) for x in e["data_offsets"])
        count = int(np.prod(shape, dtype=np.int64))
        if not (0 <= begin <= end <= len(data)) or end - begin != count * dt.itemsize:
            raise ValueError(f"{path}: tensor {name!r}: bad data_offsets [{begin}, {end}]")
        a = np.frombuffer(data[begin:end], dtype=dt).reshape(shape).copy()
        if e["dtype"] == "BF16":
            a = BF16(a).to_float32() if bf16_as_float32 else BF16(a)
        tensors[name] = a
    return tensors, metadata
