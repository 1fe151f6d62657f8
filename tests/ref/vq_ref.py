"""vq_ref.py - NumPy / PyTorch reference of the vector-quantisation kernels
(src/ops/vq.c): l2 normalisation and its backward (torch autograd), cosine
lookup, the EMA codebook update, dead-code restart and the commitment loss.

    python3 vq_ref.py OUT.safetensors
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402

N, D, V = 60, 8, 12
DECAY, DEAD, BETA = 0.9, 0.5, 0.25


def unit(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def main():
    rng = np.random.default_rng(17)
    x = rng.standard_normal((N, D)).astype(np.float32)
    dy = rng.standard_normal((N, D)).astype(np.float32)
    C = unit(rng.standard_normal((V, D))).astype(np.float32)
    count = rng.uniform(0, 2, V).astype(np.float32)
    esum = rng.standard_normal((V, D)).astype(np.float32)
    pick = rng.integers(0, N, V).astype(np.int64)

    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    yt = xt / xt.norm(dim=1, keepdim=True)
    yt.backward(torch.tensor(dy, dtype=torch.float64))
    y = yt.detach().numpy()

    codes = np.argmax(y @ C.astype(np.float64).T, axis=1)
    nk = np.bincount(codes, minlength=V)
    count1 = DECAY * count.astype(np.float64) + (1 - DECAY) * nk
    sum1 = DECAY * esum.astype(np.float64)
    for i in range(N):
        sum1[codes[i]] += (1 - DECAY) * y[i]
    C1 = sum1 / np.linalg.norm(sum1, axis=1, keepdims=True)

    C2, sum2, count2 = C1.copy(), sum1.copy(), count1.copy()
    j = 0
    for k in range(V):
        if count1[k] < DEAD:
            C2[k] = y[pick[j]]
            sum2[k] = y[pick[j]]
            count2[k] = 1.0
            j += 1
    assert 0 < j < V, "the fixture should restart some codes, not all"

    q = C[codes].astype(np.float64)
    commit = BETA * np.mean((y - q) ** 2)
    dcommit = 2 * BETA * (y - q) / (N * D)

    f = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    stio.save(sys.argv[1], {
        "x": x, "dy": dy, "C": C, "count": count, "sum": esum, "pick": pick,
        "y": f(y), "norm": f(np.linalg.norm(x.astype(np.float64), axis=1)), "dx": f(xt.grad.numpy()),
        "codes": codes.astype(np.int64), "count1": f(count1), "sum1": f(sum1), "C1": f(C1),
        "C2": f(C2), "sum2": f(sum2), "count2": f(count2), "restarted": np.array([j], np.int64),
        "commit": np.array([commit], np.float32), "dcommit": f(dcommit),
    }, {"decay": str(DECAY), "dead": str(DEAD), "beta": str(BETA)})


if __name__ == "__main__":
    main()
