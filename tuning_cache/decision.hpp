// Decision: the tuned config for one (kernel family, Problem key) on one device, with the validators
// that say when it still applies and the provenance that says who measured it, when, on what.
// The JSON form is documented in docs/tuning_cache.md; parsing is strict and every error names the
// offending field, so a malformed file is reported, never half-loaded.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "moejit/config.hpp"
#include "moejit/problem.hpp"

namespace moejit {

// Bumped whenever the JSON layout changes incompatibly; older/newer files are refused with a message
// naming the command that rebuilds them, and kept on disk. 2: one family name per operation (the
// backend is a validator), typed shapes with named fields, the decision's URI.
inline constexpr int kTuningSchemaVersion = 2;

// The command that rebuilds a tuning cache this moejit cannot read.
inline constexpr const char* kRetuneHint =
    "rebuild it with `moejit tune --model NAME` (or --shape) for the models you train; the old file is kept";

// Everything that, when it changes, may change which config wins (or whether it runs at all).
struct Validators {
  int schema = kTuningSchemaVersion;
  std::string backend;        // "cuda" | "host"
  std::string device;         // GPU name or CPU model
  std::string arch;           // "sm_90a" or the host CPU name
  std::string features;       // host CPU features; empty on cuda
  int compute_units = 0;      // SMs or hardware threads
  std::string driver;         // CUDA driver version; empty on host
  std::string compiler;       // compiler id + version ("nvrtc-13.0")
  std::string template_hash;  // rendered source + every included template file

  bool operator==(const Validators&) const = default;
  // Same physical kind of device: backend, device name, arch, features, compute units.
  bool same_device(const Validators& other) const;
  // Empty if `this` (a stored decision) may be used where `current` holds; otherwise why not.
  std::string mismatch(const Validators& current) const;
};

struct Provenance {
  std::string user;  // who tuned ($USER)
  std::string host;  // machine name
  std::string date;  // ISO-8601 UTC, "2026-11-25T12:00:00Z"
  std::string moejit_version;
  std::string strategy;    // "exhaustive", "local_search", "imported", ...
  int64_t candidates = 0;  // how many were measured
  bool partial = false;    // a budget stopped the search early
  bool operator==(const Provenance&) const = default;
  static Provenance here(std::string strategy = {});  // filled for this process, now
};

// A losing measurement kept beside the winner after a merge or import conflict.
struct Alternative {
  std::string config;
  double time_ms = 0;
  Provenance provenance;
  bool operator==(const Alternative&) const = default;
};

struct Decision {
  Problem problem;  // tokens holds the token bucket
  Config config;
  double time_ms = 0;  // median of the re-timed winner
  double throughput = 0;
  std::string throughput_unit;  // "GB/s" or "TFLOP/s"
  Validators validators;
  Provenance provenance;
  std::vector<Alternative> alternatives;

  Family family() const { return problem.family; }
  std::string key() const { return problem.key(); }
  // family/arch/dtype/shape_tb<bucket>/config (kernel_uri).
  std::string uri() const;
  // Decisions with the same identity measure the same thing on the same kind of device with the
  // same template and compiler, so their times are comparable and at most one is kept.
  std::string identity() const;
  bool operator==(const Decision&) const = default;
};

nlohmann::json to_json(const Decision& decision);
nlohmann::json provenance_to_json(const Provenance& provenance);
Provenance provenance_from_json(const nlohmann::json& j, const std::string& where);
// Throws Error naming `where` and the field ("decisions[3].validators.arch: missing").
Decision decision_from_json(const nlohmann::json& j, const std::string& where);

// Keeps the faster of two decisions with the same identity; the slower goes into alternatives
// (with its own alternatives), so both measurements stay on record.
Decision merge_faster(const Decision& a, const Decision& b);

}  // namespace moejit
