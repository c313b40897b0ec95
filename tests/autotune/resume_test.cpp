// kill -9 in the middle of a tuning run, then run again: the same final decision, and no candidate
// the journal recorded is measured twice.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>

#include "files.hpp"

namespace fs = std::filesystem;

namespace {

pid_t start_driver(const fs::path& dir, const fs::path& log, int sleep_ms, const fs::path& out) {
  pid_t pid = ::fork();
  if (pid == 0) {
    FILE* f = std::freopen(out.c_str(), "w", stdout);
    (void)f;
    ::execl(MOEJIT_TOY_DRIVER, MOEJIT_TOY_DRIVER, dir.c_str(), log.c_str(), std::to_string(sleep_ms).c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

int wait_for(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

std::set<std::string> lines_of(const fs::path& path, const std::string& field = "") {
  std::set<std::string> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    if (field.empty()) {
      out.insert(line);
    } else {  // the config of a journal line: {"config":"a1_b1",...}
      size_t p = line.find("\"config\":\"");
      if (p != std::string::npos) out.insert(line.substr(p + 10, line.find('"', p + 10) - p - 10));
    }
  }
  return out;
}

std::string first_word(const fs::path& path) {
  std::ifstream in(path);
  std::string word;
  in >> word;
  return word;
}

TEST(Resume, KillNineMidRunThenResumeGivesTheSameDecisionWithoutRetiming) {
  const fs::path root = fs::temp_directory_path() / ("moejit-resume-" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root);

  // Reference: one uninterrupted run.
  ASSERT_EQ(WEXITSTATUS(wait_for(start_driver(root / "ref", root / "ref.log", 0, root / "ref.out"))), 0);
  const std::string reference = first_word(root / "ref.out");
  ASSERT_EQ(reference, "a5_b4");

  // Interrupted run: 40 ms per candidate; kill -9 once the journal holds 8 candidates.
  pid_t pid = start_driver(root / "run", root / "first.log", 40, root / "first.out");
  fs::path journal;
  size_t journaled = 0;
  for (int i = 0; i < 400 && journaled < 8; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(root / "run" / "journal", ec)) journal = e.path();
    if (!journal.empty()) journaled = lines_of(journal, "config").size();
  }
  ASSERT_GE(journaled, 8u) << "the driver did not journal candidates in time";
  ::kill(pid, SIGKILL);
  ASSERT_TRUE(WIFSIGNALED(wait_for(pid)));
  const std::set<std::string> done = lines_of(journal, "config");
  ASSERT_LT(done.size(), 28u) << "killed too late to test resuming";

  // Resume.
  ASSERT_EQ(WEXITSTATUS(wait_for(start_driver(root / "run", root / "second.log", 0, root / "second.out"))), 0);
  std::ifstream out(root / "second.out");
  std::string winner;
  int resumed = 0, measured = 0;
  out >> winner >> resumed >> measured;
  EXPECT_EQ(winner, reference);
  EXPECT_EQ(static_cast<size_t>(resumed), done.size());
  EXPECT_EQ(resumed + measured, 28);
  const std::set<std::string> again = lines_of(root / "second.log");
  for (const std::string& config : done) EXPECT_FALSE(again.count(config)) << config << " was re-timed";
  // The stored decision matches the reference run's.
  auto stored = moejit::read_file(root / "run" / "swiglu_fwd.json");
  ASSERT_TRUE(stored);
  EXPECT_NE(stored->find("\"config\": \"" + reference + "\""), std::string::npos);
  fs::remove_all(root);
}

}  // namespace
