// The device work one captured step enqueued, in order, as signatures (what and where: a kernel and
// its grid, a fill's target and size, an upload's target and size). Replaying a CUDA graph runs the
// step's host code again with enqueueing switched off; each op it would have enqueued is checked
// against the captured one, so a step that took another path (other kernels, other buffers, other
// shapes) stops with an error instead of silently replaying stale work. Pure C++, tested on the CPU.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace moejit {

class EnqueueLog {
 public:
  enum class Mode {
    run,     // enqueue, keep nothing (eager)
    record,  // enqueue (into a capture) and keep each signature
    check,   // enqueue nothing; each op must match the recorded one at its position
  };

  void start(Mode mode);  // record: forgets the previous recording; check: from its first op
  // True when the caller must enqueue the op (run, record); false in check mode. Throws Error naming
  // `what` when a checked op differs from the recorded one at its position, or comes after the last.
  bool admit(uint64_t signature, const std::string& what);
  // Check mode: throws Error when fewer ops were seen than recorded. Returns to run mode.
  void finish();
  Mode mode() const { return mode_; }
  size_t recorded() const { return recorded_.size(); }

 private:
  Mode mode_ = Mode::run;
  std::vector<uint64_t> recorded_;
  std::vector<std::string> names_;  // of the recorded ops, for the error
  size_t cursor_ = 0;
};

// FNV-1a over 64-bit words: an op's signature from its handle, sizes and grid.
uint64_t signature_of(std::initializer_list<uint64_t> words);

}  // namespace moejit
