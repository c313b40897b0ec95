// Isolation: a candidate that faults (an illegal address poisons a CUDA context; a host kernel can
// segfault) or hangs must not end the tuning run. Risky work runs in a child process with a time
// limit; its result comes back as one JSON line on a pipe. A child killed by a signal is reported
// `crashed`, one past its limit is killed and reported `timeout`.
//   fork:  the host backend (and test backends): the child inherits the loaded kernel and inputs.
//   spawn: CUDA (a CUDA context does not survive fork): `moejit tune-worker ...` builds its own
//          backend, loads the candidate from the binary cache, measures it and prints the result.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "candidate.hpp"

namespace moejit {

enum class Isolation { none, fork, spawn };
const char* to_string(Isolation isolation);
Isolation parse_isolation(const std::string& text);  // "none" | "fork" | "spawn"; throws Error

CandidateResult run_in_fork(const std::string& config, const std::function<CandidateResult()>& work, double timeout_s);
CandidateResult run_in_worker(const std::string& config, const std::vector<std::string>& argv, double timeout_s);

}  // namespace moejit
