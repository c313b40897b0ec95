#include "moejit/problem.hpp"

#include <algorithm>
#include <charconv>
#include <optional>
#include <vector>

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

// One named dimension of a shape, in declaration order: JSON name, text prefix, the value.
struct Field {
  const char* name;
  const char* text;
  int64_t* value;
};

// The one table of every shape's dimension names.
std::vector<Field> fields(Shape& shape) {
  struct Visit {
    std::vector<Field> operator()(GemmShape& s) const {
      return {{"experts", "e", &s.experts}, {"top_k", "topk", &s.top_k}, {"k", "k", &s.k}, {"n", "n", &s.n}};
    }
    std::vector<Field> operator()(RoutingShape& s) const {
      return {{"experts", "e", &s.experts}, {"top_k", "topk", &s.top_k}, {"width", "width", &s.width}};
    }
    std::vector<Field> operator()(RowsShape& s) const {
      return {{"top_k", "topk", &s.top_k}, {"width", "width", &s.width}};
    }
  };
  return std::visit(Visit{}, shape);
}

Shape empty_shape(ShapeKind kind) {
  switch (kind) {
    case ShapeKind::grouped_gemm:
      return GemmShape{};
    case ShapeKind::routing:
      return RoutingShape{};
    case ShapeKind::rows:
      return RowsShape{};
  }
  throw Error("unknown shape kind");
}

std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (size_t i = 0; i <= text.size(); ++i)
    if (i == text.size() || text[i] == sep) {
      parts.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  return parts;
}

// "k2048" with name "k" -> 2048; nullopt when the name differs or the number is not all digits.
std::optional<int64_t> named_number(std::string_view part, std::string_view name) {
  if (part.size() <= name.size() || part.substr(0, name.size()) != name) return std::nullopt;
  int64_t value = 0;
  const char* first = part.data() + name.size();
  const char* last = part.data() + part.size();
  auto [end, ec] = std::from_chars(first, last, value);
  if (ec != std::errc() || end != last || value < 0) return std::nullopt;
  return value;
}

std::string shape_form(ShapeKind kind) {
  Shape shape = empty_shape(kind);
  std::string form;
  for (const Field& f : fields(shape)) form += (form.empty() ? "" : "_") + std::string(f.text) + "<n>";
  return form;
}

const char* kind_mismatch = " has no such shape: its problems are ";

}  // namespace

ShapeKind kind_of(const Shape& shape) {
  return static_cast<ShapeKind>(shape.index());
}

std::string to_string(const Shape& shape) {
  Shape copy = shape;
  std::string text;
  for (const Field& f : fields(copy))
    text += (text.empty() ? "" : "_") + std::string(f.text) + std::to_string(*f.value);
  return text;
}

std::vector<ShapeDim> shape_dims(const Shape& shape) {
  Shape copy = shape;
  std::vector<ShapeDim> dims;
  for (const Field& f : fields(copy)) dims.push_back({f.name, f.text, *f.value});
  return dims;
}

Shape shape_from_dims(ShapeKind kind, const std::function<int64_t(std::string_view name)>& value_of) {
  Shape shape = empty_shape(kind);
  for (const Field& f : fields(shape)) *f.value = value_of(f.name);
  return shape;
}

Shape parse_shape_text(ShapeKind kind, std::string_view text) {
  Shape shape = empty_shape(kind);
  const std::vector<Field> expected = fields(shape);
  const std::vector<std::string_view> parts = split(text, '_');
  bool ok = parts.size() == expected.size();
  for (size_t i = 0; ok && i < parts.size(); ++i) {
    const auto value = named_number(parts[i], expected[i].text);
    ok = value.has_value();
    if (ok) *expected[i].value = *value;
  }
  if (!ok)
    throw Error("shape '" + std::string(text) + "' is not a " + std::string(to_string(kind)) + " shape (" +
                shape_form(kind) + ")");
  return shape;
}

Problem::Problem(Family f, DType d, Shape s, int64_t t) : family(f), dtype(d), shape(std::move(s)), tokens(t) {
  const ShapeKind want = family_info(f).shape;
  if (kind_of(shape) != want)
    throw Error(std::string(moejit::to_string(f)) + " problems have a " + std::string(moejit::to_string(want)) +
                " shape, not " + std::string(moejit::to_string(kind_of(shape))));
}

namespace {
template <typename S, typename P>
auto& shape_as(P& problem) {
  if (auto* s = std::get_if<S>(&problem.shape)) return *s;
  throw Error(std::string(to_string(problem.family)) + kind_mismatch + std::string(to_string(kind_of(problem.shape))) +
              " (" + problem.to_string() + ")");
}
}  // namespace

const GemmShape& Problem::gemm() const {
  return shape_as<GemmShape>(*this);
}
const RoutingShape& Problem::routing() const {
  return shape_as<RoutingShape>(*this);
}
const RowsShape& Problem::row_shape() const {
  return shape_as<RowsShape>(*this);
}
GemmShape& Problem::gemm() {
  return shape_as<GemmShape>(*this);
}
RoutingShape& Problem::routing() {
  return shape_as<RoutingShape>(*this);
}
RowsShape& Problem::row_shape() {
  return shape_as<RowsShape>(*this);
}

int64_t Problem::rows() const {
  if (const auto* g = std::get_if<GemmShape>(&shape)) return tokens * std::max<int64_t>(g->top_k, 1);
  if (const auto* r = std::get_if<RowsShape>(&shape)) return tokens * std::max<int64_t>(r->top_k, 1);
  return tokens;
}

std::string Problem::to_string() const {
  return std::string(moejit::to_string(family)) + "/" + std::string(moejit::to_string(dtype)) + "/" +
         moejit::to_string(shape) + "_t" + std::to_string(tokens);
}

std::string Problem::key() const {
  return std::string(moejit::to_string(family)) + "/" + std::string(moejit::to_string(dtype)) + "/" +
         moejit::to_string(shape) + "_tb" + std::to_string(token_bucket(tokens));
}

Problem Problem::parse(std::string_view text) {
  const std::vector<std::string_view> parts = split(text, '/');
  const auto bad = [&](const std::string& why) {
    return Error("problem '" + std::string(text) + "': " + why + " (form: family/dtype/shape_t<tokens>)");
  };
  if (parts.size() != 3) throw bad("expected three '/'-separated fields");
  const Family family = parse_family(parts[0]);
  const DType dtype = parse_dtype(parts[1]);
  const std::string_view rest = parts[2];
  const size_t cut = rest.rfind('_');
  if (cut == std::string_view::npos) throw bad("no token count");
  const std::string_view tokens_part = rest.substr(cut + 1);
  auto tokens = named_number(tokens_part, "tb");
  if (!tokens) tokens = named_number(tokens_part, "t");
  if (!tokens) throw bad("token count '" + std::string(tokens_part) + "' is not t<n> or tb<n>");
  return Problem(family, dtype, parse_shape_text(family_info(family).shape, rest.substr(0, cut)), *tokens);
}

std::string kernel_uri(std::string_view family, std::string_view arch, std::string_view dtype, std::string_view shape,
                       std::string_view config) {
  std::string uri;
  for (std::string_view part : {family, arch, dtype, shape, config}) {
    if (!uri.empty()) uri += '/';
    uri += part.empty() ? std::string_view("any") : part;
  }
  return uri;
}

}  // namespace moejit
