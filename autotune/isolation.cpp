#include "isolation.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>

#include "moejit/error.hpp"

extern char** environ;

namespace moejit {
namespace {

// Reads the child's output until EOF or the deadline, then reaps it and classifies the outcome.
CandidateResult collect(pid_t pid, int fd, const std::string& config, double timeout_s) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + std::chrono::duration<double>(timeout_s);
  std::string output;
  bool timed_out = false;
  char buffer[4096];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{fd, POLLIN, 0};
    int ready = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF: the child finished (or died)
    output.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  CandidateResult result;
  result.config = config;
  if (timed_out) {
    result.status = CandidateStatus::timeout;
    result.detail = "no result within " + std::to_string(timeout_s) + " s: killed (hang?)";
    return result;
  }
  if (WIFSIGNALED(status)) {
    result.status = CandidateStatus::crashed;
    result.detail =
        "worker killed by signal " + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
    return result;
  }
  // The result is the last non-empty line (a worker may print logs before it).
  size_t end = output.find_last_not_of("\n ");
  size_t begin = end == std::string::npos ? std::string::npos : output.rfind('\n', end);
  std::string line = end == std::string::npos ? ""
                                              : output.substr(begin == std::string::npos ? 0 : begin + 1,
                                                              end - (begin == std::string::npos ? 0 : begin + 1) + 1);
  try {
    CandidateResult parsed = candidate_result_from_json(nlohmann::json::parse(line));
    parsed.config = config;
    return parsed;
  } catch (const std::exception& e) {
    result.status = CandidateStatus::crashed;
    result.detail = "worker exited with status " + std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) +
                    " without a result" + (line.empty() ? "" : ": " + line.substr(0, 200));
    return result;
  }
}

}  // namespace

const char* to_string(Isolation isolation) {
  switch (isolation) {
    case Isolation::none:
      return "none";
    case Isolation::fork:
      return "fork";
    case Isolation::spawn:
      return "spawn";
  }
  return "none";
}

Isolation parse_isolation(const std::string& text) {
  if (text == "none") return Isolation::none;
  if (text == "fork") return Isolation::fork;
  if (text == "spawn") return Isolation::spawn;
  throw Error("unknown isolation '" + text + "': use none, fork or spawn");
}

CandidateResult run_in_fork(const std::string& config, const std::function<CandidateResult()>& work, double timeout_s) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw Error(std::string("cannot create a pipe: ") + std::strerror(errno));
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    throw Error(std::string("cannot fork a candidate worker: ") + std::strerror(errno));
  }
  if (pid == 0) {
    ::close(fds[0]);
    std::string line;
    try {
      line = to_json(work()).dump() + "\n";
    } catch (const std::exception& e) {
      CandidateResult failed;
      failed.config = config;
      failed.detail = e.what();
      line = to_json(failed).dump() + "\n";
    }
    const char* p = line.data();
    size_t left = line.size();
    while (left > 0) {
      ssize_t n = ::write(fds[1], p, left);
      if (n <= 0) break;
      p += n;
      left -= static_cast<size_t>(n);
    }
    ::_exit(0);  // no atexit handlers or destructors of the parent's objects in the child
  }
  ::close(fds[1]);
  return collect(pid, fds[0], config, timeout_s);
}

CandidateResult run_in_worker(const std::string& config, const std::vector<std::string>& argv, double timeout_s) {
  if (argv.empty()) throw Error("no worker command for spawn isolation");
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw Error(std::string("cannot create a pipe: ") + std::strerror(errno));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    throw Error("cannot start the tuning worker " + argv[0] + ": " + std::strerror(rc));
  }
  return collect(pid, fds[0], config, timeout_s);
}

}  // namespace moejit
