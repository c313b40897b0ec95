#include "reference_step_backend.hpp"

#include <cstdlib>
#include <cstring>

namespace moejit::runtime {
namespace process_memory {

void* allocate(DType dtype, i64 count) {
  if (count < 0) throw Error("negative buffer size " + std::to_string(count));
  const size_t bytes = (size_t(count) * dtype_bytes(dtype) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, bytes ? bytes : 64);
  if (!p) throw Error("out of memory allocating " + std::to_string(bytes) + " bytes for a runtime buffer");
  std::memset(p, 0xff, bytes);
  return p;
}

void release(void* data) {
  std::free(data);
}

void copy(void* dst, const void* src, DType dtype, i64 count) {
  if (count > 0) std::memcpy(dst, src, size_t(count) * dtype_bytes(dtype));
}

void zero(TypedPtr p, i64 count) {
  if (count > 0) std::memset(p.data, 0, size_t(count) * dtype_bytes(p.dtype));
}

namespace {
double load(TypedPtr p, i64 i) {
  switch (p.dtype) {
    case DType::f32:
      return p.as<float>()[i];
    case DType::f64:
      return p.as<double>()[i];
    case DType::bf16:
      return to_float(p.as<bf16>()[i]);
    case DType::i32:
      return p.as<int32_t>()[i];
  }
  return 0;
}
void store(TypedPtr p, i64 i, double x) {
  switch (p.dtype) {
    case DType::f32:
      p.as<float>()[i] = float(x);
      return;
    case DType::f64:
      p.as<double>()[i] = x;
      return;
    case DType::bf16:
      p.as<bf16>()[i] = from_float<bf16>(float(x));
      return;
    case DType::i32:
      p.as<int32_t>()[i] = int32_t(x);
      return;
  }
}
}  // namespace

void convert(TypedPtr dst, TypedPtr src, i64 count) {
  if (dst.data == src.data && dst.dtype == src.dtype) return;
  if (dst.dtype == src.dtype) return copy(dst.data, src.data, dst.dtype, count);
  for (i64 i = 0; i < count; ++i) store(dst, i, load(src, i));
}

}  // namespace process_memory

template <typename T>
AdamWCoefs<T> adamw_coefs(const AdamWStep& s, double norm) {
  return {norm > s.max_norm ? T(s.max_norm / norm) : T(1),
          T(s.beta1),
          T(s.beta2),
          T(1.0 - std::pow(s.beta1, double(s.t))),
          T(1.0 - std::pow(s.beta2, double(s.t))),
          T(s.lr),
          T(s.weight_decay),
          T(s.eps)};
}

template <typename T>
void ReferenceStepBackend<T>::adamw(TypedPtr params, TypedPtr weights, TypedPtr grads, TypedPtr m, TypedPtr v,
                                    TypedPtr norm, i64 n, std::span<const ParamSegment> segments, const AdamWStep& s) {
  const AdamWCoefs<T> k = adamw_coefs<T>(s, double(*norm.as<T>()));
  for (const ParamSegment& seg : segments)
    adamw_range(params.as<T>(), m.as<T>(), v.as<T>(), grads.as<T>(), seg.offset, seg.offset + seg.size, seg.decay, k);
  this->convert(weights, params, n);
}

template AdamWCoefs<float> adamw_coefs<float>(const AdamWStep&, double);
template AdamWCoefs<double> adamw_coefs<double>(const AdamWStep&, double);
template class ReferenceStepBackend<float>;
template class ReferenceStepBackend<double>;

}  // namespace moejit::runtime
