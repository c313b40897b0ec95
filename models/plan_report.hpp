// What `moejit plan` prints: one config's counts and FLOPs, or an equal-resource design table, as a
// readable table or as JSON (schema in docs/models.md). Kept in the library so tests can check it.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "planner.hpp"

namespace moejit {

// A token budget D or a compute budget C for one config; at most one is set (> 0).
struct Budget {
  double tokens = 0;
  double compute = 0;
};

nlohmann::json config_plan_json(const ModelConfig& config, const Budget& budget);
std::string config_plan_table(const ModelConfig& config, const Budget& budget);

nlohmann::json design_plan_json(const DesignQuery& query, const DesignCandidate* baseline,
                                const std::vector<DesignCandidate>& designs);
std::string design_plan_table(const DesignQuery& query, const DesignCandidate* baseline,
                              const std::vector<DesignCandidate>& designs);

}  // namespace moejit
