// `moejit plan`: a config's exact parameter counts, N / N_a / r_a, training FLOPs and the compute
// of a token budget (or the tokens of a compute budget); with --target-ra, the equal-resource MoE
// designs for a dense baseline (or for --params and --compute). docs/models.md has the JSON schema.
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>

#include "cli_checks.hpp"
#include "commands.hpp"
#include "files.hpp"
#include "model_config.hpp"
#include "moejit/error.hpp"
#include "plan_report.hpp"

namespace moejit::cli {
namespace {

struct PlanOptions {
  std::string config;
  bool list = false;
  bool json = false;
  double tokens = 0;
  double compute = 0;
  // Design mode.
  double target_ra = 0;
  double params = 0;
  double unique_tokens = 0;
  double tolerance = 0.01;
  double ra_tolerance = 0.01;
  std::string layers, d_model, experts, top_k, d_expert, d_shared;
  int64_t width_multiple = 64;
  int64_t dense_layers = 1;
  int64_t dense_ffn = 0;
  int64_t vocab = 65536, seq_len = 2048, head_dim = 128;
  size_t max_results = 20;
  size_t per_shape = 2;
  std::string save;  // write the best design here as a config file
};

// "lo:hi" or a single value, each a whole decimal integer in [0, 2^31 - 1].
IntRange parse_range(const std::string& text, const char* flag, IntRange fallback) {
  if (text.empty()) return fallback;
  const std::string what = std::string(flag) + " wants lo:hi or a single integer";
  const auto colon = text.find(':');
  if (colon == std::string::npos) {
    const int64_t v = parse_integer(text, 0, kMaxIndex, what);
    return {v, v};
  }
  return {parse_integer(text.substr(0, colon), 0, kMaxIndex, what),
          parse_integer(text.substr(colon + 1), 0, kMaxIndex, what)};
}

// The same as a validator, so that a bad range exits 2 before the search starts.
CLI::Validator range_text(const char* flag) {
  return CLI::Validator(
      [flag](std::string& text) -> std::string {
        try {
          parse_range(text, flag, {});
        } catch (const Error& e) {
          return e.what();
        }
        return {};
      },
      "LO:HI", "range");
}

void print(const PlanOptions& o, const nlohmann::json& j, const std::string& table) {
  if (o.json) {
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << table;
  }
}

void list_configs(const PlanOptions& o) {
  nlohmann::json j = nlohmann::json::array();
  std::string table = "shipped model configs in " + models_dir().string() + "\n";
  for (const auto& name : list_model_configs()) {
    const ModelConfig c = find_model_config(name);
    const ParamCounts p = count_params(c);
    j.push_back({{"name", name},
                 {"scope", std::string(to_string(c.scope))},
                 {"N", p.n},
                 {"N_active", p.n_active},
                 {"activation_rate", p.activation_rate()},
                 {"description", c.description}});
    char buf[256];
    std::snprintf(buf, sizeof buf, "  %-18s %-9s N %14lld  N_a %14lld  r_a %6.2f%%  %s\n", name.c_str(),
                  std::string(to_string(c.scope)).c_str(), static_cast<long long>(p.n),
                  static_cast<long long>(p.n_active), 100.0 * p.activation_rate(), c.description.c_str());
    table += buf;
  }
  print(o, j, table);
}

void run_design(const PlanOptions& o) {
  DesignQuery q;
  std::optional<DesignCandidate> baseline;
  if (!o.config.empty()) {
    const ModelConfig base = find_model_config(o.config);
    q = design_query_for_baseline(base, o.tokens, o.target_ra);
    if (o.compute > 0) q.compute = o.compute;
    if (o.params > 0) q.target_n = static_cast<int64_t>(o.params);
  } else {
    if (o.params <= 0)
      throw Error("plan --target-ra needs a baseline config or --params N (and optionally --compute C)");
    if (o.tokens > 0)
      throw Error("plan --target-ra --tokens D needs a baseline config (D is its token count); use --compute C");
    if (o.layers.empty() || o.d_model.empty()) {
      throw Error("plan --target-ra without a baseline needs --layers lo:hi and --d-model lo:hi");
    }
    q.target_n = static_cast<int64_t>(o.params);
    q.compute = o.compute;
    q.target_ra = o.target_ra;
    q.base.name = "params-" + std::to_string(q.target_n);
    q.base.vocab = o.vocab, q.base.seq_len = o.seq_len, q.base.head_dim = o.head_dim;
    q.experts = {8, 128}, q.top_k = {1, 16}, q.d_expert = {64, 1024}, q.d_shared = {0, 8192};
  }
  q.n_tolerance = o.tolerance;
  q.ra_tolerance = o.ra_tolerance;
  q.unique_tokens = o.unique_tokens;
  q.width_multiple = o.width_multiple;
  q.dense_layers = o.dense_layers;
  q.dense_ffn = o.dense_ffn;
  q.max_results = o.max_results;
  q.per_shape = o.per_shape;
  q.layers = parse_range(o.layers, "--layers", q.layers);
  q.d_model = parse_range(o.d_model, "--d-model", q.d_model);
  q.experts = parse_range(o.experts, "--experts", q.experts);
  q.top_k = parse_range(o.top_k, "--top-k", q.top_k);
  q.d_expert = parse_range(o.d_expert, "--d-expert", q.d_expert);
  q.d_shared = parse_range(o.d_shared, "--d-shared", q.d_shared);
  if (!o.config.empty()) baseline = evaluate_design(find_model_config(o.config), q);
  const auto designs = design_equal_resource(q);
  const DesignCandidate* b = baseline ? &*baseline : nullptr;
  print(o, design_plan_json(q, b, designs), design_plan_table(q, b, designs));
  if (!o.save.empty()) {
    if (designs.empty()) throw Error("plan --save: no design to save (widen the tolerances or ranges)");
    write_file_atomic(o.save, to_json(designs.front().config).dump(2) + "\n");
    std::cerr << "saved " << designs.front().config.name << " to " << o.save << "\n";
  }
}

void run(const PlanOptions& o) {
  if (o.list) return list_configs(o);
  if (o.target_ra > 0) return run_design(o);
  if (o.config.empty()) throw Error("plan needs a config name or path (see `moejit plan --list`), or --target-ra");
  const ModelConfig c = find_model_config(o.config);
  const Budget budget{o.tokens, o.compute};
  print(o, config_plan_json(c, budget), config_plan_table(c, budget));
}

}  // namespace

void add_plan_command(CLI::App& app) {
  auto opts = std::make_shared<PlanOptions>();
  auto* cmd = app.add_subcommand(
      "plan",
      "Parameter counts, N / N_a / r_a, training FLOPs and C or D of a model config; with --target-ra, "
      "equal-resource MoE designs for a dense baseline");
  auto* positional = cmd->add_option("CONFIG", opts->config,
                                     "Config name (see --list) or path to a .json file; the baseline with --target-ra");
  cmd->add_option("--config", opts->config, "The same as the positional config")->excludes(positional);
  cmd->add_flag("--list", opts->list, "List the shipped configs with N, N_a, r_a");
  cmd->add_flag("--json", opts->json, "Print JSON instead of a table");
  const CLI::Validator positive = real_in(0, kMaxReal, true);
  auto* tokens = cmd->add_option("--tokens", opts->tokens,
                                 "Token budget D (e.g. 299e9): prints C = M_train * D; "
                                 "with --target-ra, the baseline's D")
                     ->check(positive);
  cmd->add_option("--compute", opts->compute, "Compute budget C in FLOPs (e.g. 9.1e20): prints D = C / M_train")
      ->excludes(tokens)
      ->check(positive);
  cmd->add_option("--target-ra", opts->target_ra, "Design MoE models at this activation rate (e.g. 0.2)")
      ->check(real_in(0.0, 1.0, true, true));
  cmd->add_option("--params", opts->params, "N to match (default: the baseline's N), e.g. 2.15e9")->check(positive);
  cmd->add_option("--unique-tokens", opts->unique_tokens, "Unique-token pool: reports the epochs each design needs")
      ->check(positive);
  cmd->add_option("--tolerance", opts->tolerance, "Accepted |N/target - 1| (default 0.01)")->check(real_in(0, 1));
  cmd->add_option("--ra-tolerance", opts->ra_tolerance, "Accepted |r_a - target| in absolute terms (default 0.01)")
      ->check(real_in(0, 1));
  cmd->add_option("--layers", opts->layers, "Layer range lo:hi (default: baseline L/2 : L)")
      ->check(range_text("--layers"));
  cmd->add_option("--d-model", opts->d_model, "d_model range lo:hi, stepped by head_dim (default: baseline d/2 : d)")
      ->check(range_text("--d-model"));
  cmd->add_option("--experts", opts->experts, "E range (default 8:128)")->check(range_text("--experts"));
  cmd->add_option("--top-k", opts->top_k, "K range (default 1:16)")->check(range_text("--top-k"));
  cmd->add_option("--d-expert", opts->d_expert,
                  "Routed expert width range, stepped by --width-multiple (default 64:1024)")
      ->check(range_text("--d-expert"));
  cmd->add_option("--d-shared", opts->d_shared, "Shared expert width range, 0 = none (default 0 : 2*d_model)")
      ->check(range_text("--d-shared"));
  cmd->add_option("--width-multiple", opts->width_multiple, "Expert and dense FFN widths are multiples of this (64)")
      ->transform(integer_in(1, kMaxIndex));
  cmd->add_option("--dense-layers", opts->dense_layers, "Leading dense layers (paper: 1)")
      ->transform(integer_in(0, kMaxIndex));
  cmd->add_option("--dense-ffn", opts->dense_ffn, "Dense-layer FFN width (default: 8/3 * d_model rounded)")
      ->transform(integer_in(0, kMaxIndex));
  cmd->add_option("--vocab", opts->vocab, "Vocabulary without a baseline (65536)")->transform(integer_in(1, kMaxIndex));
  cmd->add_option("--seq-len", opts->seq_len, "Sequence length without a baseline (2048)")
      ->transform(integer_in(1, kMaxIndex));
  cmd->add_option("--head-dim", opts->head_dim, "Head dim without a baseline (128)")
      ->transform(integer_in(1, kMaxIndex));
  cmd->add_option("--max-results", opts->max_results, "Designs to print, best first (20)")->transform(integer_in(1));
  cmd->add_option("--per-shape", opts->per_shape, "Designs per (layers, d_model) pair (2)")->transform(integer_in(1));
  cmd->add_option("--save", opts->save, "With --target-ra: write the best design as a config .json (loadable by plan)");
  cmd->callback([opts] { run(*opts); });
}

}  // namespace moejit::cli
