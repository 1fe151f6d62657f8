"""pth_to_safetensors.py - a PyTorch checkpoint (.pth / pytorch_model.bin) as safetensors,
for `beit convert` and `beit predict`, which read safetensors only (they never unpickle).

    python3 scripts/pth_to_safetensors.py IN.pth OUT.safetensors

Unwraps the official unilm files ({"model": state_dict}, DeepSpeed's {"module": ...})
and keeps every name as it is (timm, unilm or Hugging Face); floats are written as
float32, integer buffers (relative_position_index) as int64. Needs Debian's python3-torch;
the writer is tests/ref/stio.py, so the safetensors package is not needed.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
import stio  # noqa: E402


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    obj = torch.load(sys.argv[1], map_location="cpu")
    for key in ("model", "module", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    tensors = {}
    for name, value in obj.items():
        if not torch.is_tensor(value):
            continue
        value = value.detach()
        tensors[name] = (value.float() if value.is_floating_point() else value.long()).contiguous().numpy()
    stio.save(sys.argv[2], tensors, {"format": "pt"})
    print(f"{sys.argv[2]}: {len(tensors)} tensors")


if __name__ == "__main__":
    main()
