#include "host_step_ops.hpp"

#include "moejit/error.hpp"
#include "reference_step_backend.hpp"
#include "step/step_ops_host.h"

namespace moejit::runtime {
namespace {

struct OpInfo {
  HostStepOp op;
  const char* entry;    // the extern "C" symbol
  const char* wrapper;  // the function of step_ops_host.h it calls
};

// Indexed by HostStepOp.
constexpr OpInfo kOps[kHostStepOps] = {
    {HostStepOp::rmsnorm_fwd, "moejit_step_rmsnorm_fwd", "rmsnorm_fwd_host"},
    {HostStepOp::rmsnorm_bwd, "moejit_step_rmsnorm_bwd", "rmsnorm_bwd_host"},
    {HostStepOp::cross_entropy_fwd, "moejit_step_cross_entropy_fwd", "cross_entropy_fwd_host"},
    {HostStepOp::cross_entropy_bwd, "moejit_step_cross_entropy_bwd", "cross_entropy_bwd_host"},
    {HostStepOp::add, "moejit_step_add", "add_host"},
    {HostStepOp::sum_squares, "moejit_step_sum_squares", "sum_squares_host"},
    {HostStepOp::adamw, "moejit_step_adamw", "adamw_host"},
};

const OpInfo& info(HostStepOp op) {
  const OpInfo& i = kOps[static_cast<int>(op)];
  if (i.op != op) throw Error("host step op table out of order");  // a wiring bug, caught by the tests
  return i;
}

int64_t chunks(int64_t n, int64_t chunk) {
  return (n + chunk - 1) / chunk;
}

}  // namespace

Source host_step_ops_source() {
  Source s;
  s.family = "step_ops";
  s.dtype = "f32";
  s.shape = "any";
  s.config = "rows" + std::to_string(kStepRowChunk);
  s.file_name = "step_ops.f32.cpp";
  s.code = s.banner() + "#include \"step/step_ops_host.h\"\n\n";
  for (int i = 0; i < kHostStepOps; ++i) {
    const OpInfo& op = info(HostStepOp(i));
    s.code += std::string("extern \"C\" void ") + op.entry + "(void** args, const moejit::HostLaunch* launch) {\n" +
              "  moejit::" + op.wrapper + "(args, launch);\n}\n";
    s.entries.push_back(op.entry);
  }
  return s;
}

HostStepOps::HostStepOps(HostBackend& backend) : backend_(backend) {
  const Source source = host_step_ops_source();
  auto binary = backend.build(source);
  for (int i = 0; i < kHostStepOps; ++i) kernels_[i] = backend.load(binary, source.entries[i]);
}

template <typename... A>
void HostStepOps::launch(HostStepOp op, A... args) {
  void* p[] = {static_cast<void*>(&args)...};
  LaunchDims dims;
  dims.grid[0] = backend_.threads();
  kernels_[static_cast<int>(op)]->launch(dims, p);
}

void HostStepOps::rmsnorm_fwd(float* out, float* rstd, const float* x, const float* w, int64_t N, int64_t C) {
  launch(HostStepOp::rmsnorm_fwd, out, rstd, x, w, N, C);
}

void HostStepOps::rmsnorm_bwd(float* d_x, float* d_w, const float* d_out, const float* x, const float* w,
                              const float* rstd, int64_t N, int64_t C) {
  const int64_t parts = chunks(N, kStepRowChunk);
  floats_.resize(parts * C);
  launch(HostStepOp::rmsnorm_bwd, d_x, floats_.data(), d_out, x, w, rstd, N, C);
  for (int64_t c = 0; c < parts; ++c)
    for (int64_t j = 0; j < C; ++j) d_w[j] += floats_[c * C + j];
}

double HostStepOps::cross_entropy_fwd(float* probs, const float* logits, const int32_t* targets, int64_t N, int64_t V) {
  floats_.resize(N);
  launch(HostStepOp::cross_entropy_fwd, probs, floats_.data(), logits, targets, N, V);
  double sum = 0;
  for (int64_t i = 0; i < N; ++i) sum += floats_[i];
  return N > 0 ? sum / double(N) : 0.0;
}

void HostStepOps::cross_entropy_bwd(float* d_logits, const float* probs, const int32_t* targets, int64_t N, int64_t V,
                                    float scale) {
  launch(HostStepOp::cross_entropy_bwd, d_logits, probs, targets, N, V, N > 0 ? scale / float(N) : 0.0f);
}

void HostStepOps::add(float* out, const float* in, int64_t n) {
  launch(HostStepOp::add, out, in, n);
}

double HostStepOps::sum_squares(const float* g, int64_t n) {
  doubles_.assign(chunks(n, kStepSumChunk), 0.0);
  launch(HostStepOp::sum_squares, doubles_.data(), g, n);
  double sum = 0;
  for (double s : doubles_) sum += s;
  return sum;
}

void HostStepOps::adamw(float* p, float* m, float* v, const float* g, int64_t begin, int64_t end, bool decay,
                        const AdamWCoefs<float>& k) {
  launch(HostStepOp::adamw, p, m, v, g, begin, end, int64_t(decay), &k);
}

}  // namespace moejit::runtime
