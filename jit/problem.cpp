#include "moejit/problem.hpp"

#include <sstream>

#include "moejit/error.hpp"

namespace moejit {

std::string_view to_string(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return "f32";
    case DType::bf16:
      return "bf16";
    case DType::f64:
      return "f64";
    case DType::i32:
      return "i32";
  }
  return "?";
}

DType parse_dtype(std::string_view text) {
  if (text == "f32" || text == "fp32" || text == "float") return DType::f32;
  if (text == "bf16" || text == "bfloat16") return DType::bf16;
  throw Error("unknown dtype '" + std::string(text) + "': use f32 or bf16");
}

size_t dtype_bytes(DType dtype) {
  switch (dtype) {
    case DType::f32:
    case DType::i32:
      return 4;
    case DType::bf16:
      return 2;
    case DType::f64:
      return 8;
  }
  return 0;
}

int64_t token_bucket(int64_t tokens) {
  int64_t bucket = 1;
  while (bucket < tokens && bucket < kMaxTokenBucket) bucket <<= 1;
  return bucket;
}

namespace {
std::string format(const Problem& p, const char* token_label, int64_t token_value) {
  std::ostringstream os;
  os << p.family << '[' << to_string(p.dtype) << ",E=" << p.num_experts << ",k=" << p.top_k << ",d=" << p.d_model
     << ",f=" << p.d_expert << ',' << token_label << '=' << token_value << ']';
  return os.str();
}
}  // namespace

std::string Problem::to_string() const {
  return format(*this, "t", tokens);
}
std::string Problem::key() const {
  return format(*this, "tb", token_bucket(tokens));
}

}  // namespace moejit
