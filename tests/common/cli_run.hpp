// Runs the built `moejit` binary as a user would, for the CLI tests: through the shell, with
// MOEJIT_CACHE_DIR set (and any other environment given), stdout and stderr captured together.
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace moejit::test {

struct CliRun {
  int code;            // exit status; -1 when killed by a signal (a crash must fail every test)
  std::string output;  // stdout + stderr
  bool has(const std::string& text) const { return output.find(text) != std::string::npos; }
};

// `env` is prepended as shell assignments ("MOEJIT_LOG=info "); `args` is shell text.
inline CliRun run_cli(const std::string& binary, const std::filesystem::path& cache_dir, const std::string& args,
                      const std::string& env = "") {
  static int runs = 0;
  const std::filesystem::path out =
      std::filesystem::temp_directory_path() /
      ("moejit-cli-" + std::to_string(::getpid()) + "-" + std::to_string(runs++) + ".out");
  const std::string cmd =
      env + " MOEJIT_CACHE_DIR=" + cache_dir.string() + " " + binary + " " + args + " >" + out.string() + " 2>&1";
  const int status = std::system(cmd.c_str());
  std::ifstream in(out);
  std::stringstream text;
  text << in.rdbuf();
  std::filesystem::remove(out);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text.str()};
}

}  // namespace moejit::test
