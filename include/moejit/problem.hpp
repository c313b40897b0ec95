// Problem: what a kernel call computes, independent of how: the family, the dtype, a typed shape
// (one struct per ShapeKind, every field named for what it is) and the call's token count.
// Plain data, hashable, printable, parseable:
//   grouped_gemm_fwd/bf16/e128_topk8_k2048_n768_t3000       to_string()
//   grouped_gemm_fwd/bf16/e128_topk8_k2048_n768_tb4096      key(): tokens replaced by their bucket
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "moejit/family.hpp"

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

// Y (rows, n) = X (rows, k) . W_e (k, n) over `experts` row segments, rows = tokens * top_k
// (a dense GEMM is experts = top_k = 1). Text: e128_topk8_k2048_n768.
struct GemmShape {
  int64_t experts = 1, top_k = 1, k = 0, n = 0;
  bool operator==(const GemmShape&) const = default;
};
// Tokens routed to top_k of `experts`; activation rows are `width` wide. Text: e128_topk8_width2048.
struct RoutingShape {
  int64_t experts = 0, top_k = 0, width = 0;
  bool operator==(const RoutingShape&) const = default;
};
// rows = tokens * top_k rows of `width` elements, element-wise. Text: topk8_width768.
struct RowsShape {
  int64_t top_k = 1, width = 0;
  bool operator==(const RowsShape&) const = default;
};
// Alternatives in ShapeKind order.
using Shape = std::variant<GemmShape, RoutingShape, RowsShape>;
ShapeKind kind_of(const Shape& shape);
std::string to_string(const Shape& shape);
// The named dimensions of a shape in declaration order: its name in JSON ("experts") and its
// prefix in the text form ("e"), for printers and parsers that must not hard-code a kind.
struct ShapeDim {
  std::string_view name, text;
  int64_t value;
};
std::vector<ShapeDim> shape_dims(const Shape& shape);
// A shape of `kind` whose every dimension `value_of(name)` returns (it throws for a missing one).
Shape shape_from_dims(ShapeKind kind, const std::function<int64_t(std::string_view name)>& value_of);
// Inverse of to_string(shape) for a shape of `kind`; throws Error naming the expected form.
Shape parse_shape_text(ShapeKind kind, std::string_view text);

struct Problem {
  Family family = Family::grouped_gemm_fwd;
  DType dtype = DType::bf16;
  Shape shape;
  int64_t tokens = 0;  // exact count of the call; keys use token_bucket(tokens)

  Problem() = default;
  // Throws Error when the shape's kind is not the family's.
  Problem(Family family, DType dtype, Shape shape, int64_t tokens);

  // The typed shape; throws Error naming the family when it has another kind.
  const GemmShape& gemm() const;
  const RoutingShape& routing() const;
  const RowsShape& row_shape() const;
  GemmShape& gemm();
  RoutingShape& routing();
  RowsShape& row_shape();
  // Rows of the call's activations: tokens * top_k (grouped GEMMs, rows), tokens (routing).
  int64_t rows() const;

  std::string to_string() const;
  std::string key() const;
  // Inverse of to_string() and key() (a key parses with tokens = the bucket).
  static Problem parse(std::string_view text);
  bool operator==(const Problem&) const = default;
};

// flashinfer-style kernel URI, fixed field order: family/arch/dtype/shape/config. Binaries use the
// part of the shape compiled into them ("any" when none is); tuning decisions the problem's shape
// with its token bucket ("e128_topk8_k2048_n768_tb4096"), so a decision's URI is its key plus arch
// and config.
std::string kernel_uri(std::string_view family, std::string_view arch, std::string_view dtype, std::string_view shape,
                       std::string_view config);

}  // namespace moejit
