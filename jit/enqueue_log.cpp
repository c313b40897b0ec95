#include "enqueue_log.hpp"

#include "moejit/error.hpp"

namespace moejit {
namespace {

[[noreturn]] void diverged(size_t position, const std::string& what, const std::string& expected) {
  throw Error("the training step enqueued other device work than its captured CUDA graph (op " +
              std::to_string(position) + ": " + what + ", captured: " + expected +
              "); this is a bug in the step's capture: run with MOEJIT_NO_GRAPH=1 (eager) and report it");
}

}  // namespace

void EnqueueLog::start(Mode mode) {
  mode_ = mode;
  cursor_ = 0;
  if (mode == Mode::record) {
    recorded_.clear();
    names_.clear();
  }
}

bool EnqueueLog::admit(uint64_t signature, const std::string& what) {
  switch (mode_) {
    case Mode::run:
      return true;
    case Mode::record:
      recorded_.push_back(signature);
      names_.push_back(what);
      return true;
    case Mode::check:
      break;
  }
  if (cursor_ >= recorded_.size()) diverged(cursor_, what, "nothing (the graph ends before)");
  if (recorded_[cursor_] != signature) diverged(cursor_, what, names_[cursor_]);
  ++cursor_;
  return false;
}

void EnqueueLog::finish() {
  const Mode was = mode_;
  mode_ = Mode::run;
  if (was == Mode::check && cursor_ != recorded_.size()) diverged(cursor_, "the end of the step", names_[cursor_]);
}

uint64_t signature_of(std::initializer_list<uint64_t> words) {
  uint64_t h = 1469598103934665603ull;
  for (uint64_t w : words)
    for (int byte = 0; byte < 8; ++byte) {
      h ^= (w >> (8 * byte)) & 0xff;
      h *= 1099511628211ull;
    }
  return h;
}

}  // namespace moejit
