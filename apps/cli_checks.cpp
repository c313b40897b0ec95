#include "cli_checks.hpp"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "moejit/error.hpp"
#include "moejit/family.hpp"

namespace moejit::cli {
namespace {

std::string number_text(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

std::string integer_range(int64_t lo, int64_t hi) {
  if (hi == kMaxInt) return lo == 1 ? "a positive integer" : "an integer >= " + std::to_string(lo);
  return "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
}

std::string real_range(double lo, double hi, bool lo_open, bool hi_open) {
  if (hi == kMaxReal) return std::string("a finite number ") + (lo_open ? "> " : ">= ") + number_text(lo);
  return std::string("a number in ") + (lo_open ? "(" : "[") + number_text(lo) + ", " + number_text(hi) +
         (hi_open ? ")" : "]");
}

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> parts;
  std::istringstream in(text);
  std::string part;
  while (std::getline(in, part, sep)) parts.push_back(part);
  if (!text.empty() && text.back() == sep) parts.emplace_back();  // "1,2," has an empty third part
  return parts;
}

// "" or why `text` is not a finite real in the range.
std::string real_error(const std::string& text, double lo, double hi, bool lo_open, bool hi_open) {
  const std::string want = real_range(lo, hi, lo_open, hi_open);
  char* end = nullptr;
  const double v = text.empty() ? 0 : std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || std::isspace(static_cast<unsigned char>(text[0])))
    return "'" + text + "' is not a number; want " + want;
  if (!std::isfinite(v)) return "'" + text + "' is not finite; want " + want;
  const bool below = lo_open ? v <= lo : v < lo, above = hi_open ? v >= hi : v > hi;
  if (below || above) return text + " is out of range; want " + want;
  return {};
}

}  // namespace

std::string integer_error(std::string_view text, int64_t lo, int64_t hi) {
  const std::string want = integer_range(lo, hi);
  int64_t v = 0;
  const char* first = text.data();
  const char* last = text.data() + text.size();
  // from_chars takes '-' but not '+'; "+-5" must stay invalid.
  if (last - first >= 2 && *first == '+' && first[1] != '-') ++first;
  const auto [end, ec] = std::from_chars(first, last, v, 10);
  if (text.empty() || ec == std::errc::invalid_argument || end != last)
    return "'" + std::string(text) + "' is not a whole decimal number; want " + want;
  if (ec == std::errc::result_out_of_range || v < lo || v > hi)
    return std::string(text) + " is out of range; want " + want;
  return {};
}

int64_t parse_integer(std::string_view text, int64_t lo, int64_t hi, const std::string& what) {
  if (std::string why = integer_error(text, lo, hi); !why.empty()) throw Error(what + ": " + why);
  int64_t v = 0;
  std::from_chars(text.data() + (text[0] == '+'), text.data() + text.size(), v, 10);
  return v;
}

CLI::Validator integer_in(int64_t lo, int64_t hi) {
  // Rewrites the accepted text to plain decimal: CLI11 converts with base 0, so "010" would be 8.
  return CLI::Validator(
      [lo, hi](std::string& text) {
        std::string why = integer_error(text, lo, hi);
        if (why.empty()) text = std::to_string(parse_integer(text, lo, hi, ""));
        return why;
      },
      integer_range(lo, hi), "integer_in");
}

CLI::Validator real_in(double lo, double hi, bool lo_open, bool hi_open) {
  return CLI::Validator([=](std::string& text) { return real_error(text, lo, hi, lo_open, hi_open); },
                        real_range(lo, hi, lo_open, hi_open), "real_in");
}

CLI::Validator one_of(std::vector<std::string> known, std::string what) {
  return CLI::Validator(
      [known = std::move(known), what = std::move(what)](std::string& text) -> std::string {
        for (const auto& k : known)
          if (k == text) return {};
        std::string list;
        for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
        return "unknown " + what + " '" + text + "' (known: " + list + ")";
      },
      "", "one_of");
}

CLI::Validator kernel_family() {
  std::vector<std::string> known;
  for (const FamilyInfo& family : all_families()) known.emplace_back(family.name);
  return one_of(std::move(known), "kernel family");
}

LayerShape parse_shape(const std::string& shape, DType dtype) {
  const std::string format = "--shape wants four positive integers d_model,d_expert,E,topk (e.g. 2048,1408,64,8)";
  const std::vector<std::string> parts = split(shape, ',');
  if (parts.size() != 4) throw Error(format + ", got '" + shape + "'");
  const char* names[] = {"d_model", "d_expert", "E", "topk"};
  int64_t v[4];
  for (int i = 0; i < 4; ++i) {
    if (std::string why = integer_error(parts[i], 1, kMaxDim); !why.empty())
      throw Error(format + "; " + names[i] + " " + why);
    v[i] = parse_integer(parts[i], 1, kMaxDim, names[i]);
  }
  if (v[3] > v[2])
    throw Error("--shape " + shape + ": topk " + std::to_string(v[3]) + " exceeds E " + std::to_string(v[2]) +
                " (a token cannot pick more experts than exist); lower topk or raise E");
  return LayerShape{dtype, v[0], v[1], v[2], v[3]};
}

std::vector<int64_t> parse_tokens(const std::string& tokens) {
  std::vector<int64_t> out;
  if (tokens == "all") {
    for (int64_t b = 1; b <= kMaxTokenBucket; b *= 2) out.push_back(b);
    return out;
  }
  for (const std::string& part : split(tokens, ','))
    out.push_back(parse_integer(part, 1, kMaxIndex, "--tokens wants token counts separated by commas, or 'all'"));
  if (out.empty()) throw Error("--tokens is empty: give token counts separated by commas, or 'all'");
  return out;
}

namespace {
template <typename Parse>
CLI::Validator checked_by(Parse parse, std::string name) {
  return CLI::Validator(
      [parse](std::string& text) -> std::string {
        try {
          parse(text);
        } catch (const Error& e) {
          return e.what();
        }
        return {};
      },
      "", std::move(name));
}
}  // namespace

CLI::Validator shape_text() {
  return checked_by([](const std::string& t) { parse_shape(t, DType::f32); }, "shape");
}

CLI::Validator tokens_text() {
  return checked_by([](const std::string& t) { parse_tokens(t); }, "tokens");
}

}  // namespace moejit::cli
