// Time per kernel family (the benchmark's "time per kernel family"). Single-threaded callers only:
// the layers call it between parallel loops, never inside one.
//
// On a backend that computes where the host clock cannot see (cuda: the host only queues the work),
// a scope is timed on the device instead, by two marks on its stream (a DeviceTimer), and its
// seconds are added once the device has done the work: settle(), which the trainer calls after each
// step and evaluation. A scope the timer cannot mark (a step captured or replayed as one CUDA graph
// has no per-family times) keeps the host's.
#pragma once
#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace moejit::runtime {

class DeviceTimer {
 public:
  virtual ~DeviceTimer() = default;
  // Records a point on the device's queue; -1 when it cannot now.
  virtual int mark() = 0;
  // Seconds between two marks (waits until the device reached `to`).
  virtual double seconds(int from, int to) = 0;
  // The marks handed out so far may be reused.
  virtual void reset() = 0;
};

class Profiler {
 public:
  struct Entry {
    double seconds = 0;
    long calls = 0;
  };
  class Scope {
   public:
    Scope(Profiler* p, const char* name)
        : p_(p),
          name_(name),
          start_(std::chrono::steady_clock::now()),
          mark_(p && p->timer_ ? p->timer_->mark() : -1) {}
    ~Scope() {
      if (!p_) return;
      const int end = mark_ >= 0 ? p_->timer_->mark() : -1;
      if (end >= 0) {
        p_->pending_.push_back({name_, mark_, end});
        return;
      }
      p_->add(name_, std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    Profiler* p_;
    const char* name_;
    std::chrono::steady_clock::time_point start_;
    int mark_;
  };

  // Scopes from now on are timed on the device where `timer` can mark (null: the host clock).
  void use_device_timer(DeviceTimer* timer) {
    settle();
    timer_ = timer;
  }
  // Adds the device-timed scopes that ended since the last call (waits for the device).
  void settle() {
    for (const Pending& p : pending_) add(p.name, timer_->seconds(p.from, p.to));
    pending_.clear();
    if (timer_) timer_->reset();
  }
  // Time measured elsewhere (another thread's), as one call.
  void add(const std::string& name, double seconds) {
    auto& e = entries_[name];
    e.seconds += seconds;
    ++e.calls;
  }
  const std::map<std::string, Entry>& entries() const { return entries_; }
  void clear() {
    settle();
    entries_.clear();
  }

 private:
  struct Pending {
    const char* name;
    int from, to;
  };
  std::map<std::string, Entry> entries_;
  DeviceTimer* timer_ = nullptr;
  std::vector<Pending> pending_;
};

// Null-safe: `auto t = timed(profiler, "attention");` costs nothing when profiler is null.
inline Profiler::Scope timed(Profiler* p, const char* name) {
  return Profiler::Scope(p, name);
}

}  // namespace moejit::runtime
