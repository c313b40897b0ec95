#include "nvrtc_compiler.hpp"

#include <dlfcn.h>
#include <nvrtc.h>

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "compile_log.hpp"
#include "kernel_dirs.hpp"
#include "moejit/error.hpp"
#include "ptxas_report.hpp"

namespace fs = std::filesystem;

namespace moejit {
namespace {

void check(nvrtcResult result, const char* what) {
  if (result != NVRTC_SUCCESS) throw Error(std::string("NVRTC ") + what + ": " + nvrtcGetErrorString(result));
}

// The exact library file (libnvrtc.so.13.0.88) distinguishes toolkit updates that keep "13.0".
std::string library_file() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&nvrtcVersion), &info) && info.dli_fname) {
    std::error_code ec;
    fs::path real = fs::canonical(info.dli_fname, ec);
    return (ec ? fs::path(info.dli_fname) : real).filename().string();
  }
  return "unknown";
}

std::vector<std::string> default_include_dirs() {
  std::vector<std::string> dirs = kernel_include_dirs();
  dirs.push_back(MOEJIT_CUDA_INCLUDE_DIR);
#ifdef MOEJIT_CCCL_INCLUDE_DIR
  dirs.push_back(MOEJIT_CCCL_INCLUDE_DIR);
#endif
  return dirs;
}

struct Program {
  nvrtcProgram handle = nullptr;
  ~Program() {
    if (handle) nvrtcDestroyProgram(&handle);
  }
};

}  // namespace

std::string NvrtcCompiler::version() {
  int major = 0, minor = 0;
  check(nvrtcVersion(&major, &minor), "version");
  return std::to_string(major) + "." + std::to_string(minor);
}

std::vector<std::string> NvrtcCompiler::supported_archs() {
  int n = 0;
  check(nvrtcGetNumSupportedArchs(&n), "supported archs");
  std::vector<int> archs(n);
  check(nvrtcGetSupportedArchs(archs.data()), "supported archs");
  std::vector<std::string> names;
  for (int a : archs) {
    names.push_back("sm_" + std::to_string(a));
    if (a == 90 || a == 100 || a == 103 || a == 120 || a == 121) names.push_back("sm_" + std::to_string(a) + "a");
  }
  return names;
}

NvrtcCompiler::NvrtcCompiler(std::string arch)
    : arch_(std::move(arch)), id_("nvrtc-" + version() + "-" + library_file()), include_dirs_(default_include_dirs()) {
  auto archs = supported_archs();
  if (std::find(archs.begin(), archs.end(), arch_) == archs.end()) {
    std::string list;
    for (const auto& a : archs) list += " " + a;
    throw Error("NVRTC " + version() + " cannot compile for '" + arch_ + "'; supported:" + list);
  }
}

std::vector<std::string> NvrtcCompiler::effective_options(const Source& source) const {
  std::vector<std::string> options{"--gpu-architecture=" + arch_, "-std=c++20", "--ptxas-options=-v",
                                   "-default-device"};
  for (const auto& dir : include_dirs_) options.push_back("--include-path=" + dir);
  options.insert(options.end(), source.options.begin(), source.options.end());
  return options;
}

Binary NvrtcCompiler::do_compile(const Source& source) const {
  auto start = std::chrono::steady_clock::now();
  Program program;
  check(nvrtcCreateProgram(&program.handle, source.code.c_str(), source.file_name.c_str(), 0, nullptr, nullptr),
        "create program");
  for (const auto& entry : source.entries)
    check(nvrtcAddNameExpression(program.handle, entry.c_str()), "name expression");

  auto options = effective_options(source);
  std::vector<const char*> argv;
  for (const auto& o : options) argv.push_back(o.c_str());
  nvrtcResult result = nvrtcCompileProgram(program.handle, static_cast<int>(argv.size()), argv.data());

  size_t log_size = 0;
  nvrtcGetProgramLogSize(program.handle, &log_size);
  std::string log(log_size, '\0');
  if (log_size) nvrtcGetProgramLog(program.handle, log.data());
  while (!log.empty() && (log.back() == '\0' || log.back() == '\n')) log.pop_back();

  if (result != NVRTC_SUCCESS) {
    std::string annotated = annotate_compile_log(log, source, include_dirs_);
    throw CompileError("NVRTC failed to compile " + source.uri(arch_) + " (" + source.file_name + "):\n" + annotated,
                       annotated);
  }

  Binary binary;
  binary.family = source.family;
  binary.dtype = source.dtype;
  binary.shape = source.shape;
  binary.config = source.config;
  binary.arch = arch_;
  binary.kind = "cubin";
  binary.compiler = id_;
  size_t size = 0;
  check(nvrtcGetCUBINSize(program.handle, &size), "cubin size");
  binary.image.resize(size);
  check(nvrtcGetCUBIN(program.handle, binary.image.data()), "cubin");
  check(nvrtcGetPTXSize(program.handle, &size), "PTX size");
  binary.ptx.resize(size);
  check(nvrtcGetPTX(program.handle, binary.ptx.data()), "PTX");
  while (!binary.ptx.empty() && binary.ptx.back() == '\0') binary.ptx.pop_back();
  for (const auto& entry : source.entries) {
    const char* lowered = nullptr;
    check(nvrtcGetLoweredName(program.handle, entry.c_str(), &lowered), "lowered name");
    binary.lowered_names[entry] = lowered;
  }
  binary.resources = parse_ptxas_report(log);
  binary.log = std::move(log);
  binary.compile_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return binary;
}

}  // namespace moejit
