#include "tuning_common.hpp"

#include <algorithm>

#include "cli_checks.hpp"
#include "cuda_backend.hpp"
#include "cuda_driver.hpp"
#include "moejit/error.hpp"
#ifdef MOEJIT_WITH_LLVM
#include "host_backend.hpp"
#endif

namespace moejit::cli {

std::string default_backend_name() {
  return CudaDriver::available() ? "cuda" : "host";
}

std::unique_ptr<Backend> open_backend(const std::string& requested) {
  const std::string name = requested.empty() ? default_backend_name() : requested;
  if (name == "cuda") return std::make_unique<CudaBackend>();
  if (name == "host") {
#ifdef MOEJIT_WITH_LLVM
    return std::make_unique<HostBackend>();
#else
    throw UnavailableError("the host backend is not part of this build (configure with -DMOEJIT_WITH_LLVM=ON)");
#endif
  }
  throw Error("unknown backend '" + name + "': use host or cuda");
}

CLI::Option* LayerFlags::add_to(CLI::App* cmd) {
  auto* shape_option = cmd->add_option("--shape", shape, "d_model,d_expert,E,topk")->check(shape_text());
  cmd->add_option("--tokens", tokens, "Token counts, comma separated, or 'all' buckets 1..65536")
      ->capture_default_str()
      ->check(tokens_text());
  cmd->add_option("--dtype", dtype, "bf16 or f32 (default: f32 on the host backend, bf16 on cuda)");
  cmd->add_option("--backend", backend, "host or cuda (default: cuda if a GPU is usable)")
      ->check(one_of({"host", "cuda"}, "backend"));
  cmd->add_option("--families,--family", families, "Only these kernel families")
      ->delimiter(',')
      ->check(kernel_family());
  return shape_option;
}

runtime::LayerShape layer_shape(const std::string& shape, const std::string& dtype, const Backend& backend) {
  Problem p = parse_shape(shape, dtype.empty() ? "f32" : dtype);
  if (dtype.empty()) p.dtype = runtime::default_layer_dtype(backend.name());
  return {p.dtype, p.d_model, p.d_expert, p.num_experts, p.top_k};
}

bool selected(const std::vector<std::string>& families, const std::string& family) {
  return families.empty() || std::find(families.begin(), families.end(), family) != families.end();
}

void check_some_selected(const std::set<std::string>& selected_families, const std::set<std::string>& families,
                         const std::string& backend) {
  if (!selected_families.empty()) return;
  std::string known;
  for (const auto& name : families) known += (known.empty() ? "" : ", ") + name;
  throw Error("--families selects none of the kernel families this command covers on the " + backend +
              " backend (they are: " + known + ")");
}

}  // namespace moejit::cli
