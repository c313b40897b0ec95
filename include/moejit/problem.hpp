// Problem: what a kernel call computes, independent of how. Plain data, hashable, printable.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace moejit {

// Element types. Kernel problems use f32 and bf16; the runtime's buffers also hold f64 (the
// reference backend's gradient-check oracle) and i32 (token ids, routing indices and offsets).
enum class DType { f32, bf16, f64, i32 };
std::string_view to_string(DType dtype);
DType parse_dtype(std::string_view text);  // "f32"|"fp32"|"float" or "bf16"; throws on others
size_t dtype_bytes(DType dtype);

// Token counts are tuned and looked up by bucket: the next power of two, clamped to [1, 65536].
inline constexpr int64_t kMaxTokenBucket = 65536;
int64_t token_bucket(int64_t tokens);

struct Problem {
  std::string family;  // kernel family, e.g. "swiglu_fwd", "grouped_gemm_fwd"
  DType dtype = DType::bf16;
  int64_t num_experts = 0;  // E
  int64_t top_k = 0;
  int64_t d_model = 0;
  int64_t d_expert = 0;  // expert FFN width (or the elementwise width for non-expert families)
  int64_t tokens = 0;    // exact count of the call; keys use token_bucket(tokens)

  // Readable and stable: "swiglu_fwd[bf16,E=64,k=8,d=2048,f=1408,t=4096]".
  std::string to_string() const;
  // The lookup key: to_string() with tokens replaced by their bucket ("...,tb=4096]").
  std::string key() const;
  bool operator==(const Problem&) const = default;
};

}  // namespace moejit
