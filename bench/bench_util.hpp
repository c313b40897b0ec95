// Shared by the benchmarks: provenance (device, date, commit), medians, and the JSON result file
// written to $MOEJIT_BENCH_OUT/<name>.json (or bench/results/ when MOEJIT_BENCH_SAVE=1).
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace moejit::bench {

inline std::string utc_now() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

inline std::string shell_line(const std::string& cmd) {
  std::string out;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[512];
    if (fgets(buf, sizeof buf, p)) out = buf;
    pclose(p);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

inline std::string cpu_model() {
  return shell_line("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'");
}

inline std::string commit() {
  if (const char* c = std::getenv("MOEJIT_COMMIT")) return c;
  std::string c = shell_line("git -C " MOEJIT_SOURCE_DIR " rev-parse --short HEAD 2>/dev/null");
  return c.empty() ? "unknown" : c;
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Median of `reps` calls of `timed_once` (each returns milliseconds), after `warmup` calls.
inline double median_ms(const std::function<double()>& timed_once, int warmup = 3, int reps = 15) {
  for (int i = 0; i < warmup; ++i) timed_once();
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) t.push_back(timed_once());
  return median(t);
}

inline void save(const std::string& name, nlohmann::json result, const std::string& device) {
  result["benchmark"] = name;
  result["device"] = device;
  result["cpu"] = cpu_model();
  result["date"] = utc_now();
  result["commit"] = commit();
  std::filesystem::path dir;
  if (const char* out = std::getenv("MOEJIT_BENCH_OUT"); out && *out)
    dir = out;
  else if (const char* save = std::getenv("MOEJIT_BENCH_SAVE"); save && std::string(save) == "1")
    dir = std::filesystem::path(MOEJIT_SOURCE_DIR) / "bench" / "results";
  if (dir.empty()) return;
  std::filesystem::create_directories(dir);
  std::ofstream(dir / (name + ".json")) << result.dump(2) << '\n';
  std::cout << "results: " << (dir / (name + ".json")).string() << '\n';
}

}  // namespace moejit::bench
