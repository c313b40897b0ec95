// What the `moejit` verbs accept as numbers, in one place. Every number is read whole (no "64abc",
// "2e3" for an integer, "64.7" for a count, octal "010" or hex), range-checked, and a real must be
// finite: a bad value stops the command before any work, naming the flag, the value and what is
// accepted. Flags use the CLI11 validators (exit code 2); comma lists (--shape, --tokens) use the
// parse functions, which the validators call too.
#pragma once
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

#include "moe_layer_steps.hpp"

namespace moejit::cli {

inline constexpr int64_t kMaxInt = std::numeric_limits<int64_t>::max();
inline constexpr double kMaxReal = std::numeric_limits<double>::max();
// Kernels index rows and token assignments with int32: a count or width beyond this cannot run.
inline constexpr int64_t kMaxIndex = std::numeric_limits<int32_t>::max();
// A --shape dimension: 2^20 keeps every product the specs form (E * d_model * d_expert * bytes) in int64.
inline constexpr int64_t kMaxDim = int64_t{1} << 20;

// A decimal integer in [lo, hi]. Attach with ->transform(): it rewrites what it accepts to plain
// decimal, since CLI11 converts with base 0 and would read "010" as 8 (->check() discards rewrites).
CLI::Validator integer_in(int64_t lo, int64_t hi = kMaxInt);
// A finite real in [lo, hi]; an open end excludes its bound ("(0, 1]" with lo_open).
CLI::Validator real_in(double lo, double hi = kMaxReal, bool lo_open = false, bool hi_open = false);
// One of `known` (e.g. kernel family names); the message lists them.
CLI::Validator one_of(std::vector<std::string> known, std::string what);
// One of the kernel families (moejit/family.hpp), for --family.
CLI::Validator kernel_family();

// The texts the validators return ("" when `text` is accepted), for callers checking by hand.
std::string integer_error(std::string_view text, int64_t lo, int64_t hi);
// Throws Error("<what>: <integer_error>") or returns the value.
int64_t parse_integer(std::string_view text, int64_t lo, int64_t hi, const std::string& what);

// "d_model,d_expert,E,topk" -> a layer shape. Each a decimal integer in [1, kMaxDim], top_k <= E.
// Throws Error naming the format and the bad part.
LayerShape parse_shape(const std::string& shape, DType dtype);
// "1,128,4096" or "all" (every bucket 1..65536) -> token counts in [1, kMaxIndex].
std::vector<int64_t> parse_tokens(const std::string& tokens);
// Validators for the two, so that a bad list exits 2 before the verb starts.
CLI::Validator shape_text();
CLI::Validator tokens_text();

}  // namespace moejit::cli
