"""scripts/dvae_init_logits.py [CIFAR10_JPEG_DIR]: the dVAE encoder's logits at DALL-E's init
(tests/ref/dvae_ref.py, 32 px RGB, n_hid 32, 3 groups x 1 block, V 512) on 64 CIFAR-10 test
images: how much of each code's logit is shared by every cell, and how many distinct argmax
codes (docs/tokenizer.md, "What changed the dVAE's collapse")."""
import glob, math, os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
import numpy as np, torch
from PIL import Image
import dvae_ref as R
torch.manual_seed(0)
root = sys.argv[1] if len(sys.argv) > 1 else "/tmp/data/cifar10-jpeg"
files = sorted(glob.glob(root + "/val/*/*.jpg"))[::150][:64]
x = torch.tensor(np.stack([np.asarray(Image.open(f).convert("RGB"), dtype=np.float64) / 255 for f in files])).permute(0, 3, 1, 2)
def run(variant):
    torch.manual_seed(0)
    enc = R.Net(True, 3, 32, 64, 1, 3, 512)
    for m in enc.modules():
        if isinstance(m, R.Conv): torch.nn.init.zeros_(m.b)
    xm = 0.8 * x + 0.1
    if variant == "centred input": xm = xm - 0.5
    h = enc.blocks[:-1](xm)
    if variant != "no relu": h = torch.relu(h)
    l = enc.blocks[-1].conv(h).detach()          # [B, V, 8, 8]
    B, V = l.shape[:2]
    lv = l.permute(1, 0, 2, 3).reshape(V, -1)    # [V, positions]
    shared = lv.mean(1)                           # per-code mean over all positions
    var_shared = shared.var().item()
    var_pos = lv.var(1).mean().item()
    am = l.argmax(1).flatten()
    q = torch.softmax(l, 1)
    kl = (q * (torch.log_softmax(l, 1) + math.log(V))).sum(1).mean().item()
    print(f"{variant:14s}: var across codes of the per-code mean {var_shared:.4f}, mean var across positions {var_pos:.4f} "
          f"(shared share {var_shared/(var_shared+var_pos):.0%}); distinct argmax codes {len(am.unique())}/{V} of {am.numel()} "
          f"positions; KL(q||U) per cell {kl:.3f}")
for v in ("DALL-E", "no relu", "centred input"): run(v)
