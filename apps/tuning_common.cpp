#include "tuning_common.hpp"

#include <sstream>

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

Problem parse_shape(const std::string& shape, const std::string& dtype) {
  std::vector<int64_t> v;
  std::istringstream in(shape);
  std::string part;
  try {
    while (std::getline(in, part, ',')) v.push_back(std::stoll(part));
  } catch (const std::exception&) {
    v.clear();
  }
  if (v.size() != 4 || v[0] <= 0 || v[1] <= 0 || v[2] <= 0 || v[3] <= 0)
    throw Error("--shape wants four positive numbers d_model,d_expert,E,topk (e.g. 2048,1408,64,8), got '" + shape +
                "'");
  Problem p;
  p.d_model = v[0], p.d_expert = v[1], p.num_experts = v[2], p.top_k = v[3];
  p.dtype = parse_dtype(dtype);
  return p;
}

std::vector<int64_t> parse_tokens(const std::string& tokens) {
  std::vector<int64_t> out;
  if (tokens == "all") {
    for (int64_t b = 1; b <= kMaxTokenBucket; b *= 2) out.push_back(b);
    return out;
  }
  std::istringstream in(tokens);
  std::string part;
  while (std::getline(in, part, ',')) {
    int64_t t = 0;
    try {
      t = std::stoll(part);
    } catch (const std::exception&) {
    }
    if (t <= 0) throw Error("--tokens wants positive counts separated by commas, or 'all'; got '" + tokens + "'");
    out.push_back(t);
  }
  if (out.empty()) throw Error("--tokens is empty");
  return out;
}

}  // namespace moejit::cli
