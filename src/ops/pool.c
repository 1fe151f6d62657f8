/* pool.c - the spatial and elementwise helpers of the dVAE tokenizer (NCHW):
 * 2x2 max pooling with saved argmax (torch F.max_pool2d(kernel_size=2), odd sizes
 * floored), nearest x2 upsampling (nn.Upsample(scale_factor=2)) and ReLU. */
#include "ops/ops.h"

/* argmax[i] in 0..3 = position (dy*2 + dx) of the maximum; the first maximum
 * wins on ties, NaN propagates like torch. */
void maxpool2x2_forward(float *out, uint8_t *argmax, const float *inp, int B, int C, int H, int W) {
  const int OH = H / 2, OW = W / 2;
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; b++)
    for (int c = 0; c < C; c++) {
      const float *src = inp + ((size_t)b * C + c) * H * W;
      size_t o = ((size_t)b * C + c) * OH * OW;
      for (int oy = 0; oy < OH; oy++)
        for (int ox = 0; ox < OW; ox++) {
          const float *p = src + (size_t)(2 * oy) * W + 2 * ox;
          float v[4] = {p[0], p[1], p[W], p[W + 1]};
          int best = 0;
          for (int k = 1; k < 4; k++)
            if (v[k] > v[best] || (v[k] != v[k] && v[best] == v[best])) best = k;
          out[o + (size_t)oy * OW + ox] = v[best];
          argmax[o + (size_t)oy * OW + ox] = (uint8_t)best;
        }
    }
}

void maxpool2x2_backward(float *dinp, const float *dout, const uint8_t *argmax, int B, int C, int H,
                         int W) {
  const int OH = H / 2, OW = W / 2;
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; b++)
    for (int c = 0; c < C; c++) {
      float *dst = dinp + ((size_t)b * C + c) * H * W;
      size_t o = ((size_t)b * C + c) * OH * OW;
      for (int oy = 0; oy < OH; oy++)
        for (int ox = 0; ox < OW; ox++) {
          int k = argmax[o + (size_t)oy * OW + ox];
          dst[(size_t)(2 * oy + k / 2) * W + 2 * ox + k % 2] += dout[o + (size_t)oy * OW + ox];
        }
    }
}

/* out[b,c,y,x] = inp[b,c,y/2,x/2], out is [B,C,2H,2W] */
void upsample2x_forward(float *out, const float *inp, int B, int C, int H, int W) {
  const int OW = 2 * W;
#pragma omp parallel for schedule(static)
  for (size_t bc = 0; bc < (size_t)B * C; bc++) {
    const float *src = inp + bc * H * W;
    float *dst = out + bc * 4 * H * W;
    for (int y = 0; y < 2 * H; y++)
      for (int x = 0; x < OW; x++) dst[(size_t)y * OW + x] = src[(size_t)(y / 2) * W + x / 2];
  }
}

void upsample2x_backward(float *dinp, const float *dout, int B, int C, int H, int W) {
  const int OW = 2 * W;
#pragma omp parallel for schedule(static)
  for (size_t bc = 0; bc < (size_t)B * C; bc++) {
    const float *src = dout + bc * 4 * H * W;
    float *dst = dinp + bc * H * W;
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++) {
        const float *q = src + (size_t)(2 * y) * OW + 2 * x;
        dst[(size_t)y * W + x] += q[0] + q[1] + q[OW] + q[OW + 1];
      }
  }
}

void relu_forward(float *out, const float *inp, size_t n) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

/* Uses the forward OUTPUT as the mask (out > 0 iff inp > 0), so the input need
 * not be kept and relu may run in place. A select, not an if: the loop vectorises
 * without AVX-512's masked stores. */
void relu_backward(float *dinp, const float *dout, const float *out, size_t n) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) {
    float g = dout[i];
    dinp[i] += out[i] > 0.0f ? g : 0.0f;
  }
}
