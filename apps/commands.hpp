// One function per `moejit` verb; main.cpp wires them into CLI11. Verbs stay thin: parse flags,
// call the library, print.
#pragma once
#include <CLI/CLI.hpp>

namespace moejit::cli {

// Exit codes scripts can rely on (docs/cli.md).
inline constexpr int kOk = 0;
inline constexpr int kError = 1;        // the command ran and failed (bad input file, compile error, ...)
inline constexpr int kUsage = 2;        // bad flags or arguments
inline constexpr int kUnavailable = 3;  // the requested backend cannot run here (no GPU, no LLVM)

void add_info_command(CLI::App& app);
void add_cache_command(CLI::App& app);
void add_compile_command(CLI::App& app);
void add_tune_command(CLI::App& app);  // also the internal `tune-worker`
void add_bench_command(CLI::App& app);
// `cache export|import|merge|decisions` (tuning bundles), called from add_cache_command.
void add_tuning_cache_subcommands(CLI::App& cache);
void add_train_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_plan_command(CLI::App& app);

}  // namespace moejit::cli
