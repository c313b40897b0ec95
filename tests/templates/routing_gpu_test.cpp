// Routing on the GPU (label `gpu`): every kernel against the host loops that run the same per-token
// and per-row code (bit-identical where the math is per element: plan, permute, combine), the
// gating against near ties only, and run-to-run / config-to-config determinism.
#include <gtest/gtest.h>

#include "cuda_backend.hpp"
#include "cuda_driver.hpp"
#include "moejit/kernel_spec.hpp"
#include "routing/routing_host.h"
#include "routing/routing_spec.hpp"
#include "routing_test_util.hpp"

namespace moejit::test {
namespace {

#define MOEJIT_REQUIRE_GPU()                                             \
  do {                                                                   \
    std::string why;                                                     \
    if (!CudaDriver::available(&why)) GTEST_SKIP() << "no GPU: " << why; \
  } while (0)

struct Loaded {
  std::vector<std::unique_ptr<Kernel>> kernels;
  Kernel& operator[](size_t i) { return *kernels.at(i); }
};

Loaded load(CudaBackend& backend, Family family, Problem p, const Config& config) {
  p.family = family;
  const auto& spec = spec_for(family, "cuda");
  const Source source = spec.render(p, config, backend.device());
  auto binary = backend.build(source);
  Loaded l;
  for (const auto& entry : source.entries) l.kernels.push_back(backend.load(binary, entry));
  return l;
}

template <typename V>
DeviceBuffer upload(CudaBackend& b, const std::vector<V>& v) {
  return v.empty() ? DeviceBuffer(b, 16) : DeviceBuffer::from(b, v);
}
template <typename V>
std::vector<V> download(CudaBackend& b, const DeviceBuffer& buf, size_t n) {
  b.synchronize();
  auto all = buf.to_host<V>();
  all.resize(n);
  return all;
}
template <typename V>
DeviceBuffer poisoned_buffer(CudaBackend& b, size_t n) {
  DeviceBuffer buf(b, std::max<size_t>(n * sizeof(V), 16));
  buf.fill(0xFF);
  return buf;
}

struct Case {
  int64_t tokens;
  GateParams gate;
  int capacity = -1;
  int pad_to = 1;
  bool ties = false;
  Config gate_config, plan_config, rows_config;  // GPU configs under test
};

// Runs the whole pipeline on the GPU and on the host loops; compares.
template <typename T, int E, int K, int D>
void check_pipeline(CudaBackend& gpu, const Case& c, unsigned seed) {
  SCOPED_TRACE("E=" + std::to_string(E) + " K=" + std::to_string(K) + " D=" + std::to_string(D) +
               " T=" + std::to_string(c.tokens) + " gate " + c.gate_config.to_string() + " plan " +
               c.plan_config.to_string() + " rows " + c.rows_config.to_string());
  const DType dtype = std::is_same_v<T, bf16> ? DType::bf16 : DType::f32;
  const Problem p = routing_problem(Family::route_gate_fwd, E, K, c.tokens, D, dtype);
  const int64_t T_ = c.tokens;
  std::mt19937 rng(seed);
  auto logits = random_floats(T_ * E, rng);
  if (c.ties)
    for (auto& x : logits) x = std::round(x / 3.0f);
  const auto bias = random_floats(E, rng, -0.02f, 0.02f);
  const LossParams loss{0.01f, 0.001f};

  // ---- gating forward ----
  auto gate_k = load(gpu, Family::route_gate_fwd, p, c.gate_config);
  auto d_logits_in = upload(gpu, logits), d_bias = upload(gpu, bias);
  auto d_index = poisoned_buffer<int>(gpu, T_ * K), d_weight = poisoned_buffer<float>(gpu, T_ * K);
  auto d_probs = poisoned_buffer<float>(gpu, T_ * E), d_lse = poisoned_buffer<float>(gpu, T_);
  GateForwardArgs ga;
  ga.logits = static_cast<const float*>(d_logits_in.get());
  ga.bias = c.ties ? nullptr : static_cast<const float*>(d_bias.get());
  ga.params = c.gate;
  ga.index = static_cast<int*>(d_index.get());
  ga.weight = static_cast<float*>(d_weight.get());
  ga.probs = static_cast<float*>(d_probs.get());
  ga.lse = static_cast<float*>(d_lse.get());
  launch_route_gate_fwd(gate_k[0], p, c.gate_config, ga);
  const auto index = download<int>(gpu, d_index, T_ * K);
  const auto weight = download<float>(gpu, d_weight, T_ * K);
  const auto probs = download<float>(gpu, d_probs, T_ * E);
  const auto lse = download<float>(gpu, d_lse, T_);

  std::vector<int> h_index(T_ * K);
  std::vector<float> h_weight(T_ * K), h_probs(T_ * E), h_lse(T_);
  {
    FunctionKernel host(&route_gate_fwd_host<E, K>);
    GateForwardArgs ha = ga;
    ha.logits = logits.data(), ha.bias = c.ties ? nullptr : bias.data(), ha.index = h_index.data(),
    ha.weight = h_weight.data();
    ha.probs = h_probs.data(), ha.lse = h_lse.data();
    launch_route_gate_fwd(host, p, Config{{"lanes", 1}, {"tokens", 1}}, ha);
  }
  for (int64_t i = 0; i < T_ * K; ++i) {
    if (index[i] != h_index[i]) {
      ASSERT_FALSE(c.ties) << "exact ties must route identically; choice " << i;
      const int64_t t = i / K;
      const double kg = h_probs[t * E + index[i]] + bias[index[i]], kh = h_probs[t * E + h_index[i]] + bias[h_index[i]];
      ASSERT_LT(std::abs(kg - kh), 1e-6) << "choice " << i << ": gpu " << index[i] << " host " << h_index[i];
    } else {
      ASSERT_TRUE(near(weight[i], h_weight[i], 1e-7, 1e-5, "weight"));
    }
  }
  for (int64_t i = 0; i < T_ * E; ++i) ASSERT_TRUE(near(probs[i], h_probs[i], 1e-7, 1e-5, "probs"));

  // ---- plan on the GPU's choice, on both sides ----
  auto plan_k = load(gpu, Family::route_plan, p, c.plan_config);
  const int64_t max_rows = route_max_rows(p, c.capacity, c.pad_to);
  auto d_ws = DeviceBuffer(gpu, std::max<size_t>(route_plan_workspace_bytes(p, c.plan_config), 16));
  auto d_counts = poisoned_buffer<int>(gpu, E), d_dropped = poisoned_buffer<int>(gpu, E);
  auto d_offsets = poisoned_buffer<int>(gpu, E + 1), d_slot = poisoned_buffer<int>(gpu, T_ * K);
  auto d_row_source = poisoned_buffer<int>(gpu, max_rows), d_aux_scale = poisoned_buffer<float>(gpu, E);
  auto d_losses = poisoned_buffer<float>(gpu, 2);
  PlanArgs pa;
  pa.index = ga.index, pa.probs = ga.probs, pa.lse = ga.lse, pa.capacity = c.capacity, pa.pad_to = c.pad_to;
  pa.loss = loss, pa.workspace = d_ws.get();
  pa.counts = static_cast<int*>(d_counts.get()), pa.dropped = static_cast<int*>(d_dropped.get());
  pa.offsets = static_cast<int*>(d_offsets.get()), pa.slot = static_cast<int*>(d_slot.get());
  pa.row_source = static_cast<int*>(d_row_source.get()), pa.aux_scale = static_cast<float*>(d_aux_scale.get());
  pa.losses = static_cast<float*>(d_losses.get());
  launch_route_plan(plan_k[0], plan_k[1], plan_k[2], p, c.plan_config, pa);

  std::vector<int> h_counts(E), h_dropped(E), h_offsets(E + 1), h_slot(T_ * K), h_row_source(max_rows, -7);
  std::vector<float> h_aux_scale(E), h_losses(2);
  {
    const int chunk = 32 * static_cast<int>(c.plan_config.get("warps"));
    std::vector<char> ws(route_plan_workspace_bytes(p, c.plan_config) + 16);
    FunctionKernel count(chunk == 256 ? &route_count_host<E, K, 256> : &route_count_host<E, K, 64>);
    FunctionKernel offsets(&route_offsets_host<E, K>);
    FunctionKernel slots(chunk == 256 ? &route_slots_host<E, K, 256> : &route_slots_host<E, K, 64>);
    ASSERT_TRUE(chunk == 256 || chunk == 64) << "test instantiates warps 8 and 2 only";
    PlanArgs ha = pa;
    ha.index = index.data(), ha.probs = probs.data(), ha.lse = lse.data(), ha.workspace = ws.data();
    ha.counts = h_counts.data(), ha.dropped = h_dropped.data(), ha.offsets = h_offsets.data();
    ha.slot = h_slot.data(), ha.row_source = h_row_source.data(), ha.aux_scale = h_aux_scale.data();
    ha.losses = h_losses.data();
    launch_route_plan(count, offsets, slots, p, c.plan_config, ha);
  }
  EXPECT_EQ(download<int>(gpu, d_counts, E), h_counts);
  EXPECT_EQ(download<int>(gpu, d_dropped, E), h_dropped);
  const auto offsets = download<int>(gpu, d_offsets, E + 1);
  ASSERT_EQ(offsets, h_offsets);
  const auto slot = download<int>(gpu, d_slot, T_ * K);
  ASSERT_EQ(slot, h_slot);
  const int rows = offsets[E];
  const auto row_source = download<int>(gpu, d_row_source, rows);
  ASSERT_EQ(row_source, std::vector<int>(h_row_source.begin(), h_row_source.begin() + rows));
  EXPECT_TRUE(same_bits(download<float>(gpu, d_losses, 2), h_losses)) << "losses sum in the same order";
  EXPECT_TRUE(same_bits(download<float>(gpu, d_aux_scale, E), h_aux_scale));

  // ---- permute / combine, forward and backward ----
  auto scatter_k = load(gpu, Family::route_permute_fwd, p, c.rows_config);
  auto gather_k = load(gpu, Family::route_combine_fwd, p, c.rows_config);
  const auto x = to_storage<T>(random_floats(T_ * D, rng));
  const auto y = to_storage<T>(random_floats(std::max(rows, 1) * int64_t{D}, rng));
  const auto shared = to_storage<T>(random_floats(T_ * D, rng));
  const auto d_out = to_storage<T>(random_floats(T_ * D, rng));
  auto gx = upload(gpu, x), gy = upload(gpu, y), gshared = upload(gpu, shared), gdout = upload(gpu, d_out);
  auto gperm = poisoned_buffer<T>(gpu, max_rows * D), gdy = poisoned_buffer<T>(gpu, max_rows * D);
  auto gcomb = poisoned_buffer<T>(gpu, T_ * D), gdx = poisoned_buffer<T>(gpu, T_ * D);
  auto gdw = poisoned_buffer<float>(gpu, T_ * K);
  std::vector<T> h_perm(rows * D), h_dy(rows * D), h_comb(T_ * D), h_dx(T_ * D);
  std::vector<float> h_dw(T_ * K);
  FunctionKernel host_scatter(&route_scatter_host<T, 1, K, D>), host_gather(&route_gather_host<T, 1, K, D>);
  const Config host_rows{{"vec", 1}, {"lanes", 1}, {"rows", 1}};

  ScatterArgs sa;  // permute forward
  sa.src = gx.get(), sa.slot = pa.slot, sa.dst = gperm.get(), sa.offsets = pa.offsets, sa.row_source = pa.row_source;
  launch_route_scatter(scatter_k[0], p, c.rows_config, sa);
  ScatterArgs hsa = sa;
  hsa.src = x.data(), hsa.slot = slot.data(), hsa.dst = h_perm.data(), hsa.offsets = offsets.data();
  hsa.row_source = row_source.data();
  launch_route_scatter(host_scatter, p, host_rows, hsa);
  EXPECT_TRUE(same_bits(download<T>(gpu, gperm, rows * D), h_perm)) << "permute forward";

  GatherArgs gaa;  // combine forward
  gaa.rows = gy.get(), gaa.slot = pa.slot, gaa.weight = ga.weight, gaa.shared = gshared.get(), gaa.out = gcomb.get();
  launch_route_gather(gather_k[0], p, c.rows_config, gaa);
  GatherArgs hga = gaa;
  hga.rows = y.data(), hga.slot = slot.data(), hga.weight = weight.data(), hga.shared = shared.data();
  hga.out = h_comb.data();
  launch_route_gather(host_gather, p, host_rows, hga);
  const auto comb = download<T>(gpu, gcomb, T_ * D);
  EXPECT_TRUE(same_bits(comb, h_comb)) << "combine forward";

  GatherArgs pb;  // permute backward: d_x = sum of d_permuted rows (use y as d_permuted)
  pb.rows = gy.get(), pb.slot = pa.slot, pb.out = gdx.get();
  launch_route_gather(gather_k[0], p, c.rows_config, pb);
  GatherArgs hpb = pb;
  hpb.rows = y.data(), hpb.slot = slot.data(), hpb.out = h_dx.data();
  launch_route_gather(host_gather, p, host_rows, hpb);
  EXPECT_TRUE(same_bits(download<T>(gpu, gdx, T_ * D), h_dx)) << "permute backward";

  ScatterArgs cb;  // combine backward
  cb.src = gdout.get(), cb.slot = pa.slot, cb.weight = ga.weight, cb.y = gy.get(), cb.dst = gdy.get();
  cb.d_weight = static_cast<float*>(gdw.get()), cb.offsets = pa.offsets, cb.row_source = pa.row_source;
  launch_route_scatter(scatter_k[0], p, c.rows_config, cb);
  ScatterArgs hcb = cb;
  hcb.src = d_out.data(), hcb.slot = slot.data(), hcb.weight = weight.data(), hcb.y = y.data(), hcb.dst = h_dy.data();
  hcb.d_weight = h_dw.data(), hcb.offsets = offsets.data(), hcb.row_source = row_source.data();
  launch_route_scatter(host_scatter, p, host_rows, hcb);
  EXPECT_TRUE(same_bits(download<T>(gpu, gdy, rows * D), h_dy)) << "combine backward d_y";
  const auto dw = download<float>(gpu, gdw, T_ * K);
  for (int64_t i = 0; i < T_ * K; ++i)
    ASSERT_TRUE(near(dw[i], h_dw[i], 5e-3, 1e-4, "d_weight"));  // 2048-term fp32 dots, different trees

  // ---- gating backward ----
  auto gate_bwd_k = load(gpu, Family::route_gate_bwd, p, c.gate_config);
  auto gdl = poisoned_buffer<float>(gpu, T_ * E);
  GateBackwardArgs gb;
  gb.logits = ga.logits, gb.index = ga.index, gb.d_weight = static_cast<const float*>(gdw.get());
  gb.aux_scale = pa.aux_scale, gb.params = c.gate, gb.grad.z_scale = route_z_scale(loss.z_coef, T_);
  gb.d_logits = static_cast<float*>(gdl.get());
  launch_route_gate_bwd(gate_bwd_k[0], p, c.gate_config, gb);
  std::vector<float> h_dl(T_ * E);
  {
    FunctionKernel host(&route_gate_bwd_host<E, K>);
    GateBackwardArgs hb = gb;
    hb.logits = logits.data(), hb.index = index.data(), hb.d_weight = dw.data(), hb.aux_scale = h_aux_scale.data();
    hb.d_logits = h_dl.data();
    launch_route_gate_bwd(host, p, Config{{"lanes", 1}, {"tokens", 1}}, hb);
  }
  const auto dl = download<float>(gpu, gdl, T_ * E);
  for (int64_t i = 0; i < T_ * E; ++i)
    ASSERT_TRUE(near(dl[i], h_dl[i], 1e-3, 1e-3, "d_logits"));  // |d_weight| ~ 100: fp32 cancellation

  // ---- determinism: the same launch again gives the same bits ----
  launch_route_gather(gather_k[0], p, c.rows_config, gaa);
  EXPECT_TRUE(same_bits(download<T>(gpu, gcomb, T_ * D), comb)) << "combine forward rerun";
}

Case make_case(int64_t tokens, Config gate, Config plan, Config rows) {
  Case c;
  c.tokens = tokens;
  c.gate_config = std::move(gate);
  c.plan_config = std::move(plan);
  c.rows_config = std::move(rows);
  return c;
}

TEST(RoutingGpu, Qwen3ShapeAcrossConfigs) {
  MOEJIT_REQUIRE_GPU();
  CudaBackend gpu;
  for (int64_t tokens : {0, 1, 1000, 16384}) {
    Case c =
        make_case(tokens, {{"lanes", 32}, {"tokens", 4}}, {{"warps", 8}}, {{"vec", 8}, {"lanes", 32}, {"rows", 4}});
    c.gate.renormalize = 1;
    c.pad_to = 128;
    check_pipeline<bf16, 128, 8, 2048>(gpu, c, 1);
    c.gate_config = Config{{"lanes", 8}, {"tokens", 16}};
    c.plan_config = Config{{"warps", 2}};
    c.rows_config = Config{{"vec", 4}, {"lanes", 16}, {"rows", 2}};
    check_pipeline<bf16, 128, 8, 2048>(gpu, c, 1);
  }
}

TEST(RoutingGpu, PaperShapesFp32SigmoidCapacityGroups) {
  MOEJIT_REQUIRE_GPU();
  CudaBackend gpu;
  Case paper = make_case(777, {{"lanes", 16}, {"tokens", 8}}, {{"warps", 8}}, {{"vec", 4}, {"lanes", 32}, {"rows", 2}});
  check_pipeline<float, 92, 7, 1408>(gpu, paper, 2);
  paper.capacity = route_capacity(1.0, routing_problem(Family::route_gate_fwd, 92, 7, 777));
  paper.pad_to = 64;
  check_pipeline<float, 92, 7, 1408>(gpu, paper, 3);
  Case groups =
      make_case(2048, {{"lanes", 32}, {"tokens", 4}}, {{"warps", 2}}, {{"vec", 8}, {"lanes", 32}, {"rows", 4}});
  groups.gate.score = kScoreSigmoid, groups.gate.renormalize = 1, groups.gate.scaling = 2.5f;
  groups.gate.n_groups = 8, groups.gate.topk_groups = 4;
  check_pipeline<bf16, 256, 8, 512>(gpu, groups, 4);
  Case limits = make_case(100, {{"lanes", 32}, {"tokens", 2}}, {{"warps", 2}}, {{"vec", 4}, {"lanes", 8}, {"rows", 4}});
  check_pipeline<float, 512, 16, 256>(gpu, limits, 5);
}

TEST(RoutingGpu, TiesRouteLikeTheHostForEveryLaneCount) {
  MOEJIT_REQUIRE_GPU();
  CudaBackend gpu;
  for (int64_t lanes : {2, 8, 32}) {
    Case c = make_case(513, {{"lanes", lanes}, {"tokens", 64 / lanes}}, {{"warps", 8}},
                       {{"vec", 8}, {"lanes", 32}, {"rows", 1}});
    c.ties = true;
    check_pipeline<bf16, 64, 8, 256>(gpu, c, 6);
    c.gate.n_groups = 8, c.gate.topk_groups = 3;
    check_pipeline<bf16, 64, 8, 256>(gpu, c, 7);
  }
}

}  // namespace
}  // namespace moejit::test
