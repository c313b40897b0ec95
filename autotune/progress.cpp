#include "progress.hpp"

#include <unistd.h>

#include <algorithm>

namespace moejit {

Progress::Progress(std::FILE* out, std::string title, int total, int tty)
    : out_(out), title_(std::move(title)), total_(total) {
  tty_ = tty >= 0 ? tty != 0 : (out && ::isatty(::fileno(out)));
}

void Progress::step(const std::string& line, const std::string& best) {
  ++done_;
  if (!out_) return;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const int total = std::max(total_, done_);
  const double eta = done_ ? elapsed / done_ * (total - done_) : 0;
  if (tty_) {
    constexpr int kWidth = 24;
    const int filled = total ? kWidth * done_ / total : kWidth;
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(kWidth, '.');
    std::fprintf(out_, "\r\033[K%s [%s] %d/%d best %s eta %.0fs", title_.c_str(), bar.c_str(), done_, total,
                 best.c_str(), eta);
  } else {
    std::fprintf(out_, "%s %d/%d %s (best %s, eta %.0fs)\n", title_.c_str(), done_, total, line.c_str(), best.c_str(),
                 eta);
  }
  std::fflush(out_);
}

void Progress::finish(const std::string& line) {
  if (!out_) return;
  std::fprintf(out_, "%s%s %s\n", tty_ ? "\r\033[K" : "", title_.c_str(), line.c_str());
  std::fflush(out_);
}

}  // namespace moejit
