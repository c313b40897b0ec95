// Wall time per kernel family (the benchmark's "time per kernel family"). Single-threaded callers only:
// the layers call it between parallel loops, never inside one.
#pragma once
#include <chrono>
#include <map>
#include <string>

namespace moejit::runtime {

class Profiler {
 public:
  struct Entry {
    double seconds = 0;
    long calls = 0;
  };
  class Scope {
   public:
    Scope(Profiler* p, const char* name) : p_(p), name_(name), start_(std::chrono::steady_clock::now()) {}
    ~Scope() {
      if (!p_) return;
      auto& e = p_->entries_[name_];
      e.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      ++e.calls;
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    Profiler* p_;
    const char* name_;
    std::chrono::steady_clock::time_point start_;
  };
  // Time measured elsewhere (another thread's), as one call.
  void add(const std::string& name, double seconds) {
    auto& e = entries_[name];
    e.seconds += seconds;
    ++e.calls;
  }
  const std::map<std::string, Entry>& entries() const { return entries_; }
  void clear() { entries_.clear(); }

 private:
  std::map<std::string, Entry> entries_;
};

// Null-safe: `auto t = timed(profiler, "attention");` costs nothing when profiler is null.
inline Profiler::Scope timed(Profiler* p, const char* name) {
  return Profiler::Scope(p, name);
}

}  // namespace moejit::runtime
