// Progress of a tuning run: a one-line bar redrawn in place on a terminal (done / total, best so
// far, ETA), plain log lines otherwise (CI logs, pipes), one per candidate.
#pragma once
#include <chrono>
#include <cstdio>
#include <string>

namespace moejit {

class Progress {
 public:
  // `out` nullptr: silent. `tty` defaults to whether `out` is a terminal.
  Progress(std::FILE* out, std::string title, int total, int tty = -1);
  void set_total(int total) { total_ = total; }
  // One more candidate done (`line`: what happened to it, "vec8_threads256 0.012 ms").
  void step(const std::string& line, const std::string& best);
  void finish(const std::string& line);

 private:
  std::FILE* out_;
  std::string title_;
  int total_, done_ = 0;
  bool tty_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace moejit
