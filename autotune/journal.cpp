#include "journal.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <sstream>

#include "files.hpp"
#include "moejit/error.hpp"
#include "moejit/log.hpp"

namespace moejit {

std::map<std::string, CandidateResult> Journal::load() const {
  std::map<std::string, CandidateResult> done;
  auto text = read_file(path_);
  if (!text) return done;
  std::istringstream in(*text);
  std::string line;
  int line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    if (line.empty()) continue;
    try {
      CandidateResult r = candidate_result_from_json(nlohmann::json::parse(line));
      done[r.config] = r;
    } catch (const std::exception& e) {
      // Only the last line can be torn by a kill; anything else is worth a warning.
      if (in.peek() != std::char_traits<char>::eof())
        log_message(LogLevel::warn, path_.string() + ":" + std::to_string(line_number) + ": skipped: " + e.what());
    }
  }
  return done;
}

void Journal::append(const CandidateResult& result) {
  std::error_code ec;
  std::filesystem::create_directories(path_.parent_path(), ec);
  // A torn previous line must not swallow this one: start on a fresh line if the file lacks one.
  std::string line = to_json(result).dump() + "\n";
  if (auto text = read_file(path_); text && !text->empty() && text->back() != '\n') line = "\n" + line;
  int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw Error("cannot open the tuning journal " + path_.string() + ": " + std::strerror(errno));
  ssize_t n = ::write(fd, line.data(), line.size());
  const bool ok = n == static_cast<ssize_t>(line.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) throw Error("cannot append to the tuning journal " + path_.string() + ": " + std::strerror(errno));
}

void Journal::remove() {
  std::error_code ec;
  std::filesystem::remove(path_, ec);
}

}  // namespace moejit
