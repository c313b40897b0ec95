// One AdamW update of one parameter, written once for the host and the GPU: the gradient is scaled
// by the global-norm clipping factor first, moments and parameters are in the master type T (fp32 on
// every backend that trains; double for the gradient-check oracle).
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  p -= lr (m / c1 / (sqrt(v / c2) + eps) + wd p [decayed])
// c1, c2 are the bias corrections 1 - beta^t. The clipping factor is computed where the norm lives
// (adamw_clip), so a GPU step never reads the norm back to the host.
#pragma once
#include "common/host_device.h"

namespace moejit {

template <typename T>
struct AdamWCoefs {
  T clip, b1, b2, c1, c2, lr, wd, eps;
};

// min(1, max_norm / norm); a zero norm leaves the gradient as it is.
template <typename T>
MOEJIT_HD T adamw_clip(T norm, T max_norm) {
  return norm > max_norm ? max_norm / norm : T(1);
}

template <typename T>
MOEJIT_HD T adamw_sqrt(T x) {
#if MOEJIT_DEVICE_CODE
  return sqrtf(x);  // T is float on a GPU
#else
  return std::sqrt(x);
#endif
}

template <typename T>
MOEJIT_HD void adamw_update(T& p, T& m, T& v, T g, bool decay, const AdamWCoefs<T>& k) {
  g *= k.clip;
  m = k.b1 * m + (T(1) - k.b1) * g;
  v = k.b2 * v + (T(1) - k.b2) * g * g;
  T update = (m / k.c1) / (adamw_sqrt(v / k.c2) + k.eps);
  if (decay) update += k.wd * p;
  p -= k.lr * update;
}

}  // namespace moejit
