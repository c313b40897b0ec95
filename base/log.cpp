#include "moejit/log.hpp"

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <set>
#include <string_view>

namespace moejit {
namespace {

LogLevel level_from_env() {
  const char* text = std::getenv("MOEJIT_LOG");
  if (!text) return LogLevel::warn;
  std::string_view v(text);
  if (v == "error") return LogLevel::error;
  if (v == "info") return LogLevel::info;
  if (v == "debug") return LogLevel::debug;
  return LogLevel::warn;
}

std::atomic<int>& level_storage() {
  static std::atomic<int> level{static_cast<int>(level_from_env())};
  return level;
}

std::mutex& output_mutex() {
  static std::mutex m;
  return m;
}

const char* tag(LogLevel level) {
  switch (level) {
    case LogLevel::error:
      return "error";
    case LogLevel::warn:
      return "warning";
    case LogLevel::info:
      return "info";
    case LogLevel::debug:
      return "debug";
  }
  return "?";
}

}  // namespace

LogLevel log_level() {
  return static_cast<LogLevel>(level_storage().load(std::memory_order_relaxed));
}
void set_log_level(LogLevel level) {
  level_storage().store(static_cast<int>(level));
}

void log_message(LogLevel level, const std::string& message) {
  std::lock_guard lock(output_mutex());
  std::cerr << "moejit " << tag(level) << ": " << message << '\n';
}

void log_once(LogLevel level, const std::string& message) {
  static std::mutex m;
  static std::set<std::string> seen;
  {
    std::lock_guard lock(m);
    if (!seen.insert(message).second) return;
  }
  if (log_level() >= level) log_message(level, message);
}

}  // namespace moejit
