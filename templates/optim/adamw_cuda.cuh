// GPU wrapper of the AdamW update (adamw.h) over one parameter segment [begin, end) of the flat fp32
// master parameters, moments and gradients: a thread per element, grid-stride. The clipping factor
// is computed from the norm on the device (norm is what finish_sum_kernel<SumFinish::sqrt> wrote), so
// the step never waits for the host; the compute copy `weights` (bf16 on GPUs) is written in the same
// pass. The coefficients are read from device memory (they change every step); their `clip` is
// replaced by the device-side factor.
#pragma once
#include "optim/adamw.h"

namespace moejit {

template <typename W, int THREADS>
__global__ void __launch_bounds__(THREADS)
    adamw_kernel(float* __restrict__ params, W* __restrict__ weights, const float* __restrict__ grads,
                 float* __restrict__ m, float* __restrict__ v, const float* __restrict__ norm, float max_norm,
                 unsigned long long begin, unsigned long long end, int decay, const AdamWCoefs<float>* coefs) {
  // The coefficients change every step: from device memory, so that a captured step replays them.
  AdamWCoefs<float> k = *coefs;
  k.clip = adamw_clip(norm[0], max_norm);
  for (unsigned long long i = begin + blockIdx.x * THREADS + threadIdx.x; i < end; i += gridDim.x * THREADS) {
    float p = params[i], mi = m[i], vi = v[i];
    adamw_update(p, mi, vi, grads[i], decay != 0, k);
    params[i] = p;
    m[i] = mi;
    v[i] = vi;
    weights[i] = from_float<W>(p);
  }
}

}  // namespace moejit
