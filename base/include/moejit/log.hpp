// Leveled logging to stderr. MOEJIT_LOG=error|warn|info|debug (default warn).
#pragma once
#include <sstream>
#include <string>

namespace moejit {

enum class LogLevel { error = 0, warn = 1, info = 2, debug = 3 };

LogLevel log_level();
void set_log_level(LogLevel level);
void log_message(LogLevel level, const std::string& message);
// Logs once per distinct message for the life of the process (e.g. "cache dir read-only").
void log_once(LogLevel level, const std::string& message);

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

#define MOEJIT_LOG(level, ...)                                                                 \
  do {                                                                                         \
    if (::moejit::log_level() >= ::moejit::LogLevel::level)                                    \
      ::moejit::log_message(::moejit::LogLevel::level, ::moejit::detail::concat(__VA_ARGS__)); \
  } while (0)

}  // namespace moejit
