// Shared helpers for the tuning-cache tests: a temp directory and decisions to store.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <string>

#include "decision.hpp"

namespace moejit::testing {

struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& tag) {
    path = std::filesystem::temp_directory_path() / ("moejit-tc-" + tag + "-" + std::to_string(::getpid()));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

// The toy backend's family (tests/autotune/toy_backend.hpp): families are a closed enum.
inline constexpr Family kToy = Family::swiglu_fwd;
inline constexpr const char* kToyFile = "swiglu_fwd.json";

inline Decision make_decision(Family family, int64_t bucket, const std::string& config, double ms,
                              const std::string& device = "Toy CPU") {
  Decision d;
  switch (family_info(family).shape) {
    case ShapeKind::rows:
      d.problem = Problem(family, DType::f32, RowsShape{2, 32}, bucket);
      break;
    case ShapeKind::routing:
      d.problem = Problem(family, DType::f32, RoutingShape{8, 2, 64}, bucket);
      break;
    case ShapeKind::grouped_gemm:
      d.problem = Problem(family, DType::f32, GemmShape{8, 2, 64, 32}, bucket);
      break;
  }
  d.config = Config::parse(config);
  d.time_ms = ms;
  d.throughput = 1.5;
  d.throughput_unit = "GB/s";
  d.validators.backend = "toy";
  d.validators.device = device;
  d.validators.arch = "toy1";
  d.validators.compute_units = 2;
  d.validators.compiler = "toycc-1";
  d.validators.template_hash = "0123456789abcdef";
  d.provenance.user = "tester";
  d.provenance.host = "box";
  d.provenance.date = "2026-11-25T12:00:00Z";
  d.provenance.moejit_version = "0.1.0";
  d.provenance.strategy = "exhaustive";
  d.provenance.candidates = 28;
  return d;
}

}  // namespace moejit::testing
