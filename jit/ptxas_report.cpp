#include "ptxas_report.hpp"

#include <regex>
#include <sstream>

namespace moejit {

// The report, one block per function:
//   ptxas info    : Compiling entry function '_Z1kIfLi3EEvPT_' for 'sm_90a'
//   ptxas info    : Function properties for _Z1kIfLi3EEvPT_
//   ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
//   ptxas info    : Used 10 registers, used 1 barriers, 256 bytes smem, 360 bytes cmem[0]
std::vector<ResourceUsage> parse_ptxas_report(const std::string& log) {
  static const std::regex entry_re(R"(Compiling entry function '([^']+)')");
  static const std::regex frame_re(R"((\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads)");
  static const std::regex regs_re(R"(Used (\d+) registers)");
  static const std::regex smem_re(R"((\d+) bytes smem)");
  static const std::regex cmem_re(R"((\d+) bytes cmem\[0\])");

  std::vector<ResourceUsage> out;
  std::istringstream in(log);
  std::string line;
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_search(line, m, entry_re)) {
      out.push_back({});
      out.back().function = m[1];
      continue;
    }
    if (out.empty()) continue;
    ResourceUsage& r = out.back();
    if (std::regex_search(line, m, frame_re)) {
      r.stack_bytes = std::stoll(m[1]);
      r.spill_store_bytes = std::stoll(m[2]);
      r.spill_load_bytes = std::stoll(m[3]);
    }
    if (std::regex_search(line, m, regs_re)) r.registers = std::stoi(m[1]);
    if (std::regex_search(line, m, smem_re)) r.shared_bytes = std::stoll(m[1]);
    if (std::regex_search(line, m, cmem_re)) r.constant_bytes = std::stoll(m[1]);
  }
  return out;
}

}  // namespace moejit
