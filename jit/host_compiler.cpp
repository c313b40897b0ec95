#include "host_compiler.hpp"

#include <clang/Basic/Diagnostic.h>
#include <clang/Basic/DiagnosticOptions.h>
#include <clang/Basic/Version.h>
#include <clang/CodeGen/CodeGenAction.h>
#include <clang/Frontend/CompilerInstance.h>
#include <clang/Frontend/CompilerInvocation.h>
#include <clang/Frontend/TextDiagnosticPrinter.h>
#include <clang/Frontend/Utils.h>
#include <llvm/ADT/SmallVector.h>
#include <llvm/ADT/StringMap.h>
#include <llvm/Config/llvm-config.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/IR/Module.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Support/MemoryBuffer.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/VirtualFileSystem.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetMachine.h>
#include <llvm/Target/TargetOptions.h>
#include <llvm/TargetParser/Host.h>

#include <algorithm>
#include <chrono>
#include <mutex>

#include "compile_log.hpp"
#include "hash.hpp"
#include "kernel_dirs.hpp"
#include "moejit/error.hpp"

namespace moejit {
namespace {

// Sources live in an in-memory directory that no real file can shadow; the prefix is stripped from
// diagnostics so that they name Source::file_name, as annotate_compile_log expects.
constexpr const char* kVirtualDir = "/moejit-jit-source/";

void initialize_llvm_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    llvm::InitializeNativeTargetAsmParser();
  });
}

std::string strip_all(std::string text, const std::string& what) {
  for (size_t at; (at = text.find(what)) != std::string::npos;) text.erase(at, what.size());
  return text;
}

// LLVM's option -O3 and the backend's CodeGenOpt::Aggressive are the same choice, made once here.
std::vector<std::string> base_options() {
  return {"-std=c++20",      "-O3",   "-fno-exceptions",     "-fno-rtti", "-fPIC", "-ffp-contract=fast",
          "-fno-math-errno", "-Wall", "-Wno-unknown-pragmas"};
}

std::unique_ptr<llvm::TargetMachine> make_target_machine(const HostTarget& target) {
  std::string error;
  const llvm::Target* llvm_target = llvm::TargetRegistry::lookupTarget(target.triple, error);
  if (!llvm_target) throw Error("LLVM has no target for " + target.triple + ": " + error);
  std::string features;
  for (const auto& f : target.features) features += (features.empty() ? "" : ",") + f;
  llvm::TargetOptions options;
  return std::unique_ptr<llvm::TargetMachine>(llvm_target->createTargetMachine(
      target.triple, target.cpu, features, options, llvm::Reloc::PIC_, std::nullopt, llvm::CodeGenOpt::Aggressive));
}

// The module's relocatable object for `target` (code generation at CodeGenOpt::Aggressive).
llvm::SmallVector<char, 0> emit_object(llvm::Module& module, const HostTarget& target) {
  auto machine = make_target_machine(target);
  module.setDataLayout(machine->createDataLayout());
  llvm::SmallVector<char, 0> object;
  llvm::raw_svector_ostream object_stream(object);
  llvm::legacy::PassManager passes;
  if (machine->addPassesToEmitFile(passes, object_stream, nullptr, llvm::CGFT_ObjectFile))
    throw Error("LLVM cannot emit an object file for " + target.triple);
  passes.run(module);
  return object;
}

}  // namespace

HostTarget HostTarget::native() {
  HostTarget t;
  t.triple = llvm::sys::getProcessTriple();
  t.cpu = llvm::sys::getHostCPUName().str();
  llvm::StringMap<bool> map;
  if (llvm::sys::getHostCPUFeatures(map))
    for (const auto& entry : map) t.features.push_back((entry.second ? "+" : "-") + entry.first().str());
  std::sort(t.features.begin(), t.features.end(),
            [](const std::string& a, const std::string& b) { return a.substr(1) < b.substr(1); });
  // CPUs newer than this LLVM (or hidden by a VM) come back as "generic", which Clang rejects as a
  // target CPU: name the x86-64 level their features reach instead (the features are explicit anyway).
  if (t.cpu == "generic" || t.cpu.empty()) {
    auto all = [&](std::initializer_list<const char*> names) {
      return std::all_of(names.begin(), names.end(), [&](const char* n) { return t.has(n); });
    };
    t.cpu = all({"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}) ? "x86-64-v4"
            : all({"avx2", "fma", "bmi2", "movbe"})                          ? "x86-64-v3"
            : all({"sse4.2", "popcnt"})                                      ? "x86-64-v2"
                                                                             : "x86-64";
  }
  return t;
}

std::string HostTarget::arch() const {
  Hasher h;
  h.field(triple);
  for (const auto& f : features) h.field(f);
  return cpu + "-" + h.hex().substr(0, 8);
}

bool HostTarget::has(std::string_view feature) const {
  return std::find(features.begin(), features.end(), "+" + std::string(feature)) != features.end();
}

std::string HostTarget::enabled_features() const {
  std::string out;
  for (const auto& f : features)
    if (f[0] == '+') out += (out.empty() ? "" : ",") + f.substr(1);
  return out;
}

std::string HostCompiler::version() {
  return CLANG_VERSION_STRING;
}

HostCompiler::HostCompiler(HostTarget target)
    : target_(std::move(target)),
      id_("clang-" + version() + "-llvm-" + LLVM_VERSION_STRING),
      include_dirs_(kernel_include_dirs()) {
  initialize_llvm_once();
  std::string error;
  if (!llvm::TargetRegistry::lookupTarget(target_.triple, error))
    throw Error("the host backend cannot compile for '" + target_.triple + "': " + error);
}

std::vector<std::string> HostCompiler::effective_options(const Source& source) const {
  std::vector<std::string> options = base_options();
  options.push_back("-resource-dir=" MOEJIT_CLANG_RESOURCE_DIR);
  for (const auto& dir : include_dirs_) options.push_back("-I" + dir);
  options.insert(options.end(), source.options.begin(), source.options.end());
  return options;
}

Binary HostCompiler::do_compile(const Source& source) const {
  const auto start = std::chrono::steady_clock::now();
  const std::string path = kVirtualDir + source.file_name;

  // The source exists only in memory, layered over the real file system (for the templates and
  // the C++ library headers).
  auto memory_fs = llvm::makeIntrusiveRefCnt<llvm::vfs::InMemoryFileSystem>();
  memory_fs->addFile(path, 0, llvm::MemoryBuffer::getMemBufferCopy(source.code, path));
  auto vfs = llvm::makeIntrusiveRefCnt<llvm::vfs::OverlayFileSystem>(llvm::vfs::getRealFileSystem());
  vfs->pushOverlay(memory_fs);

  std::string log;
  llvm::raw_string_ostream log_stream(log);
  auto diag_options = llvm::makeIntrusiveRefCnt<clang::DiagnosticOptions>();
  diag_options->ShowColors = false;
  auto* printer = new clang::TextDiagnosticPrinter(log_stream, diag_options.get());
  auto diags = clang::CompilerInstance::createDiagnostics(diag_options.get(), printer, /*ShouldOwnClient=*/true);

  // The driver turns ordinary flags into cc1 flags, including the C++ library's include paths.
  std::vector<std::string> args{"clang++", "-target", target_.triple, "-c", path};
  auto options = effective_options(source);
  args.insert(args.end(), options.begin(), options.end());
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  clang::CreateInvocationOptions create_options;
  create_options.Diags = diags;
  create_options.VFS = vfs;
  std::shared_ptr<clang::CompilerInvocation> invocation = clang::createInvocation(argv, create_options);

  auto fail = [&](const std::string& what) -> CompileError {
    log_stream.flush();
    std::string annotated = annotate_compile_log(strip_all(log, kVirtualDir), source, include_dirs_);
    return CompileError(
        "Clang failed to " + what + " " + source.uri(arch()) + " (" + source.file_name + "):\n" + annotated, annotated);
  };
  if (!invocation) throw fail("set up the compile of");

  // Our own CPU and feature list, not the driver's generic x86-64; the source's options (like
  // -mno-avx512f) come after, so they win.
  auto& target_options = invocation->getTargetOpts();
  target_options.CPU = target_.cpu;
  std::vector<std::string> features = target_.features;
  features.insert(features.end(), target_options.Features.begin(), target_options.Features.end());
  target_options.Features = std::move(features);

  llvm::LLVMContext context;
  clang::CompilerInstance compiler;
  compiler.setInvocation(std::move(invocation));
  compiler.setDiagnostics(diags.get());
  compiler.setVerboseOutputStream(log_stream);  // "N errors generated." goes to the log, not stderr
  compiler.createFileManager(vfs);
  clang::EmitLLVMOnlyAction action(&context);
  const bool ok = compiler.ExecuteAction(action);
  std::unique_ptr<llvm::Module> module = ok ? action.takeModule() : nullptr;
  if (!module) throw fail("compile");

  const llvm::SmallVector<char, 0> object = emit_object(*module, target_);
  Binary binary;
  binary.family = source.family;
  binary.dtype = source.dtype;
  binary.shape = source.shape;
  binary.config = source.config;
  binary.arch = arch();
  binary.kind = "o";
  binary.compiler = id_;
  binary.image.assign(object.begin(), object.end());
  log_stream.flush();
  binary.log = strip_all(log, kVirtualDir);
  binary.compile_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return binary;
}

}  // namespace moejit
