#include "compile_log.hpp"

#include <filesystem>
#include <regex>
#include <sstream>

#include "files.hpp"

namespace fs = std::filesystem;

namespace moejit {
namespace {

std::string nth_line(const std::string& text, long n) {
  std::istringstream in(text);
  std::string line;
  for (long i = 1; std::getline(in, line); ++i)
    if (i == n) return line;
  return {};
}

std::string file_text(const std::string& file, const Source& source, const std::vector<std::string>& dirs) {
  if (file == source.file_name) return source.code;
  std::vector<fs::path> candidates{fs::path(file)};
  for (const auto& d : dirs) candidates.push_back(fs::path(d) / file);
  for (const auto& c : candidates) {
    std::error_code ec;
    if (fs::is_regular_file(c, ec)) return read_file(c).value_or("");
  }
  return {};
}

}  // namespace

std::string annotate_compile_log(const std::string& log, const Source& source,
                                 const std::vector<std::string>& include_dirs) {
  // NVRTC: "templates/swiglu/swiglu.cuh(12): error: ..."; Clang: "file.cpp:12:5: error: ...".
  static const std::regex nvrtc_re(R"(^(.+)\((\d+)\): (error|warning))");
  static const std::regex clang_re(R"(^(.+):(\d+):\d+: (error|warning))");
  std::ostringstream out;
  std::istringstream in(log);
  std::string line;
  std::smatch m;
  while (std::getline(in, line)) {
    out << line << '\n';
    if ((std::regex_search(line, m, nvrtc_re) || std::regex_search(line, m, clang_re)) && m[3] == "error") {
      std::string text = nth_line(file_text(m[1], source, include_dirs), std::stol(m[2]));
      if (!text.empty()) out << "    " << m[2] << " | " << text << '\n';
    }
  }
  return out.str();
}

}  // namespace moejit
