#include "swiglu/swiglu_spec.hpp"

#include <algorithm>

#include "moejit/error.hpp"

namespace moejit {
namespace {
const char* device_type(DType dtype) {
  return dtype == DType::bf16 ? "moejit::bf16" : "float";
}
}  // namespace

std::vector<Config> SwigluSpec::space(const Problem&, const DeviceDescription& device) const {
  std::vector<int64_t> thread_counts{128, 256, 512, 1024};
  if (device.backend == "host") {
    thread_counts = {1};
    if (device.compute_units > 1) thread_counts.push_back(device.compute_units);
  }
  std::vector<Config> configs;
  for (int64_t vec : {1, 2, 4, 8})
    for (int64_t threads : thread_counts) configs.push_back(Config{{"vec", vec}, {"threads", threads}});
  return configs;
}

std::string SwigluSpec::prune_reason(const Problem& problem, const Config& config,
                                     const DeviceDescription& device) const {
  const int64_t vec = config.get("vec"), threads = config.get("threads"), width = problem.row_shape().width;
  if (width <= 0) return "width must be positive";
  if (vec * static_cast<int64_t>(dtype_bytes(problem.dtype)) > 16) return "vector wider than 16 bytes";
  if (width % vec != 0) return "width " + std::to_string(width) + " % vec " + std::to_string(vec) + " != 0";
  if (device.backend == "host") {
    if (threads < 1 || (device.compute_units > 0 && threads > device.compute_units))
      return "threads must be between 1 and the device's " + std::to_string(device.compute_units) + " hardware threads";
  } else if (threads % 32 != 0 || threads > 1024) {
    return "threads must be a multiple of 32, at most 1024";
  }
  if (width / vec >= (int64_t{1} << 31)) return "width too wide for 32-bit indexing";
  return {};
}

Config SwigluSpec::heuristic(const Problem& problem, const DeviceDescription& device) const {
  int64_t vec = 16 / static_cast<int64_t>(dtype_bytes(problem.dtype));
  while (vec > 1 && problem.row_shape().width % vec != 0) vec /= 2;
  const int64_t threads = device.backend == "host" ? std::max(1, device.compute_units) : 256;
  return Config{{"vec", vec}, {"threads", threads}};
}

std::string SwigluSpec::entry(const Problem& problem, const Config& config, bool backward) {
  return std::string(backward ? "moejit::swiglu_bwd_kernel<" : "moejit::swiglu_fwd_kernel<") +
         device_type(problem.dtype) + ", " + std::to_string(config.get("vec")) + ", " +
         std::to_string(config.get("threads")) + ">";
}

Source SwigluSpec::render(const Problem& problem, const Config& config, const DeviceDescription& device) const {
  if (std::string why = prune_reason(problem, config, device); !why.empty())
    throw Error("config " + config.to_string() + " cannot run " + problem.to_string() + ": " + why);
  Source s;
  s.family = to_string(family());
  s.dtype = to_string(problem.dtype);
  s.shape = "any";  // the width and row count are launch arguments
  s.config = config.to_string();
  if (device.backend == "host") {
    // The same per-element math as the GPU kernel, in the host loop wrapper.
    s.file_name = s.stem() + ".cpp";
    s.code = s.banner() + "#include \"swiglu/swiglu_host.h\"\n\n" + "extern \"C\" void " + kHostEntry +
             "(void** args, const moejit::HostLaunch* launch) {\n" + "  moejit::SwigluHost<" +
             device_type(problem.dtype) + ", " + std::to_string(config.get("vec")) + ", " +
             (backward_ ? "true" : "false") + ">::run(args, launch);\n}\n";
    s.entries = {kHostEntry};
    return s;
  }
  s.file_name = s.stem() + ".cu";
  s.code = s.banner() + "#include \"swiglu/swiglu_cuda.cuh\"\n";
  s.entries = {entry(problem, config, backward_)};
  return s;
}

LaunchDims SwigluSpec::launch_dims(const Problem& problem, const Config& config, const DeviceDescription& device) {
  const int64_t threads = config.get("threads");
  if (device.backend == "host") {
    LaunchDims dims;
    dims.grid[0] = static_cast<unsigned>(threads);  // host: worker threads
    return dims;
  }
  const int64_t vectors = problem.rows() * (problem.row_shape().width / config.get("vec"));
  // Enough blocks to fill every SM several times over; the grid-stride loop covers the rest.
  const int64_t cap = std::max<int64_t>(1, device.compute_units) * (2048 / threads) * 4;
  LaunchDims dims;
  dims.grid[0] = static_cast<unsigned>(std::clamp<int64_t>((vectors + threads - 1) / threads, 1, cap));
  dims.block[0] = static_cast<unsigned>(threads);
  return dims;
}

namespace {
// Calls `launch(first_row, row_count)` over chunks whose vector count fits the kernel's 32-bit index.
template <typename F>
void for_each_row_chunk(const Problem& problem, const Config& config, F&& launch) {
  const int64_t rows = problem.rows(), per_row = problem.row_shape().width / config.get("vec");
  const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 31) / std::max<int64_t>(per_row, 1));
  for (int64_t first = 0; first < rows; first += chunk) launch(first, std::min(chunk, rows - first));
}
}  // namespace

void launch_swiglu_fwd(Kernel& kernel, const Problem& problem, const Config& config, const DeviceDescription& device,
                       const void* gate_up, void* out) {
  const int64_t width = problem.row_shape().width;
  for_each_row_chunk(problem, config, [&](int64_t first, int64_t count) {
    const void* in = static_cast<const char*>(gate_up) + first * 2 * width * dtype_bytes(problem.dtype);
    void* o = static_cast<char*>(out) + first * width * dtype_bytes(problem.dtype);
    unsigned r = static_cast<unsigned>(count), w = static_cast<unsigned>(width);
    void* args[] = {&in, &o, &r, &w};
    Problem chunk = problem;
    chunk.tokens = count, chunk.row_shape().top_k = 1;
    kernel.launch(SwigluSpec::launch_dims(chunk, config, device), args);
  });
}

void launch_swiglu_bwd(Kernel& kernel, const Problem& problem, const Config& config, const DeviceDescription& device,
                       const void* gate_up, const void* dh, void* d_gate_up) {
  const int64_t width = problem.row_shape().width;
  for_each_row_chunk(problem, config, [&](int64_t first, int64_t count) {
    const size_t b = dtype_bytes(problem.dtype);
    const void* in = static_cast<const char*>(gate_up) + first * 2 * width * b;
    const void* d = static_cast<const char*>(dh) + first * width * b;
    void* o = static_cast<char*>(d_gate_up) + first * 2 * width * b;
    unsigned r = static_cast<unsigned>(count), w = static_cast<unsigned>(width);
    void* args[] = {&in, &d, &o, &r, &w};
    Problem chunk = problem;
    chunk.tokens = count, chunk.row_shape().top_k = 1;
    kernel.launch(SwigluSpec::launch_dims(chunk, config, device), args);
  });
}

}  // namespace moejit
