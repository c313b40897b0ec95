// Counts, offsets, slots, capacity, padding, losses and the bias update on the host loops, against
// the reference's stable sort; every chunk size must give bit-identical results.
#include <gtest/gtest.h>

#include "moejit/error.hpp"
#include "routing/routing_host.h"
#include "routing/routing_spec.hpp"
#include "routing_reference.hpp"
#include "routing_test_util.hpp"

namespace moejit::test {
namespace {

struct PlanOut {
  std::vector<int> counts, dropped, offsets, slot, row_source;
  std::vector<float> aux_scale, losses;
};

template <int E, int K, int WARPS>
PlanOut run_plan(const std::vector<int>& index, const std::vector<float>* probs, const std::vector<float>* lse,
                 int64_t tokens, int capacity, int pad_to, LossParams loss) {
  const Problem problem = routing_problem(Family::route_plan, E, K, tokens);
  const Config config{{"warps", WARPS}};
  PlanOut out;
  out.counts = poisoned<int>(E);
  out.dropped = poisoned<int>(E);
  out.offsets = poisoned<int>(E + 1);
  out.slot = poisoned<int>(tokens * K);
  out.row_source = poisoned<int>(route_max_rows(problem, capacity, pad_to));
  const int64_t sequences = has_sequence_aux(loss) ? tokens / loss.seq_tokens : 0;
  out.aux_scale = poisoned<float>(E * (1 + sequences));
  out.losses = poisoned<float>(2);
  std::vector<char> workspace(route_plan_workspace_bytes(problem, config, loss.seq_tokens));
  FunctionKernel count(&route_count_host<E, K, WARPS * 32>), offsets(&route_offsets_host<E, K>),
      slots(&route_slots_host<E, K, WARPS * 32>), seq_aux(&route_seq_aux_host<E, K>);
  PlanArgs a;
  a.index = index.data();
  a.probs = probs ? probs->data() : nullptr;
  a.lse = lse ? lse->data() : nullptr;
  a.capacity = capacity;
  a.pad_to = pad_to;
  a.loss = loss;
  a.workspace = workspace.data();
  a.counts = out.counts.data();
  a.dropped = out.dropped.data();
  a.offsets = out.offsets.data();
  a.slot = out.slot.data();
  a.row_source = out.row_source.data();
  a.aux_scale = out.aux_scale.data();
  a.losses = out.losses.data();
  launch_route_plan(count, offsets, slots, problem, config, a, &seq_aux);
  return out;
}

template <int E, int K>
void check_plan(int64_t tokens, Load load, int capacity, int pad_to, unsigned seed) {
  SCOPED_TRACE("E=" + std::to_string(E) + " K=" + std::to_string(K) + " T=" + std::to_string(tokens) +
               " load=" + std::to_string(static_cast<int>(load)) + " capacity=" + std::to_string(capacity) +
               " pad=" + std::to_string(pad_to));
  std::mt19937 rng(seed);
  const auto index = random_choices(tokens, E, K, load, rng);
  auto probs = random_floats(tokens * E, rng, 0.0f, 1.0f);
  const auto lse = random_floats(tokens, rng, 0.0f, 5.0f);
  const LossParams loss{0.01f, 0.001f};
  const auto want = ref_plan(index, tokens, E, K, capacity, pad_to);
  const auto got = run_plan<E, K, 8>(index, &probs, &lse, tokens, capacity, pad_to, loss);
  EXPECT_EQ(got.counts, want.counts);
  EXPECT_EQ(got.dropped, want.dropped);
  EXPECT_EQ(got.offsets, want.offsets);
  EXPECT_EQ(got.slot, want.slot);
  ASSERT_GE(got.row_source.size(), want.row_source.size());
  EXPECT_EQ(std::vector<int>(got.row_source.begin(), got.row_source.begin() + want.row_source.size()), want.row_source);

  // Losses in double: aux = c * E * sum f p, z = c_z * mean lse^2.
  double aux = 0, z = 0;
  for (int e = 0; e < E; ++e) {
    double p = 0;
    for (int64_t t = 0; t < tokens; ++t) p += probs[t * E + e];
    const double f = tokens ? double(want.counts[e]) / (tokens * K) : 0;
    aux += f * (tokens ? p / tokens : 0);
    EXPECT_TRUE(near(got.aux_scale[e], tokens ? loss.aux_coef * E * f / tokens : 0, 1e-9, 1e-5, "aux_scale"));
  }
  for (int64_t t = 0; t < tokens; ++t) z += double(lse[t]) * lse[t];
  EXPECT_TRUE(near(got.losses[0], loss.aux_coef * E * aux, 1e-7, 1e-4, "aux loss"));
  EXPECT_TRUE(near(got.losses[1], tokens ? loss.z_coef * z / tokens : 0, 1e-7, 1e-4, "z loss"));

  // Every chunk size gives the same bits (the GPU cuts tokens the same way).
  const auto one = run_plan<E, K, 1>(index, &probs, &lse, tokens, capacity, pad_to, loss);
  EXPECT_TRUE(same_bits(one.slot, got.slot) && same_bits(one.offsets, got.offsets) &&
              same_bits(one.row_source, got.row_source));
}

TEST(RoutingPlan, EmptyAndSingleToken) {
  check_plan<8, 2>(0, Load::uniform, -1, 1, 1);
  check_plan<8, 2>(1, Load::uniform, -1, 1, 2);
  check_plan<128, 8>(0, Load::uniform, -1, 64, 3);
  check_plan<128, 8>(1, Load::uniform, -1, 64, 4);
}

TEST(RoutingPlan, ShapesUniformSkewedOneExpert) {
  for (Load load : {Load::uniform, Load::skewed, Load::one_expert}) {
    check_plan<8, 2>(1000, load, -1, 1, 10);
    check_plan<64, 6>(777, load, -1, 1, 11);
    check_plan<64, 8>(1024, load, -1, 128, 12);
    check_plan<128, 8>(4099, load, -1, 64, 13);
    check_plan<92, 7>(513, load, -1, 16, 14);
    check_plan<78, 6>(300, load, -1, 1, 15);
    check_plan<512, 16>(257, load, -1, 8, 16);
  }
}

TEST(RoutingPlan, SixteenThousandTokens) {
  check_plan<128, 8>(16384, Load::skewed, -1, 128, 20);
}

TEST(RoutingPlan, CapacityDropsLatestTokens) {
  for (Load load : {Load::uniform, Load::skewed, Load::one_expert}) {
    const Problem p = routing_problem(Family::route_plan, 64, 8, 1000);
    check_plan<64, 8>(1000, load, route_capacity(1.0, p), 1, 30);
    check_plan<64, 8>(1000, load, route_capacity(1.25, p), 64, 31);
    check_plan<64, 8>(1000, load, 0, 1, 32);  // capacity 0: everything dropped
  }
  EXPECT_EQ(route_capacity(0.0, routing_problem(Family::route_plan, 64, 8, 1000)), -1);
  EXPECT_EQ(route_capacity(1.0, routing_problem(Family::route_plan, 64, 8, 1000)), 125);
}

TEST(RoutingPlan, WithoutOptionalLossInputs) {
  std::mt19937 rng(40);
  const auto index = random_choices(100, 64, 6, Load::uniform, rng);
  const auto got = run_plan<64, 6, 2>(index, nullptr, nullptr, 100, -1, 1, LossParams{});
  EXPECT_EQ(got.offsets, ref_plan(index, 100, 64, 6, -1, 1).offsets);
  EXPECT_EQ(got.losses[0], 0.0f);
  EXPECT_EQ(got.losses[1], 0.0f);
}

// The sequence-wise aux loss: per sequence of L tokens, f and p over that sequence only, averaged over
// the sequences (double reference), added to the batch-wise aux; one gradient row per sequence.
template <int E, int K>
void check_sequence_aux(int64_t tokens, int64_t L, Load load, unsigned seed) {
  SCOPED_TRACE("E=" + std::to_string(E) + " K=" + std::to_string(K) + " T=" + std::to_string(tokens) +
               " L=" + std::to_string(L));
  std::mt19937 rng(seed);
  const auto index = random_choices(tokens, E, K, load, rng);
  const auto probs = random_floats(tokens * E, rng, 0.0f, 1.0f);
  const LossParams batch{0.01f, 0.0f}, both{0.01f, 0.0f, 0.003f, L};
  const auto only_batch = run_plan<E, K, 8>(index, &probs, nullptr, tokens, -1, 1, batch);
  const auto got = run_plan<E, K, 8>(index, &probs, nullptr, tokens, -1, 1, both);
  const int64_t S = tokens / L;
  double seq = 0;
  for (int64_t s = 0; s < S; ++s)
    for (int e = 0; e < E; ++e) {
      double chosen = 0, p = 0;
      for (int64_t t = s * L; t < (s + 1) * L; ++t) {
        for (int k = 0; k < K; ++k) chosen += index[t * K + k] == e;
        p += probs[t * E + e];
      }
      const double f = chosen / double(L * K);
      seq += f * p / double(L);
      EXPECT_TRUE(near(got.aux_scale[(1 + s) * E + e], both.seq_aux_coef * E * f / double(S * L), 1e-10, 1e-5,
                       "sequence aux_scale"));
    }
  for (int e = 0; e < E; ++e) EXPECT_EQ(got.aux_scale[e], only_batch.aux_scale[e]) << "the batch row " << e;
  EXPECT_TRUE(near(got.losses[0] - only_batch.losses[0], both.seq_aux_coef * E * seq / double(S), 1e-7, 1e-4,
                   "sequence aux loss"));
  // Every chunk size gives the same bits.
  const auto one = run_plan<E, K, 1>(index, &probs, nullptr, tokens, -1, 1, both);
  EXPECT_TRUE(same_bits(one.aux_scale, got.aux_scale));
}

TEST(RoutingPlan, SequenceWiseAuxLoss) {
  check_sequence_aux<8, 2>(96, 32, Load::uniform, 50);
  check_sequence_aux<64, 6>(300, 100, Load::skewed, 51);
  check_sequence_aux<16, 4>(77, 7, Load::one_expert, 52);
  check_sequence_aux<16, 4>(64, 64, Load::uniform, 53);  // one sequence
}

TEST(RoutingPlan, SequenceWiseAuxLossRefusesPartialSequences) {
  std::mt19937 rng(54);
  const auto index = random_choices(100, 8, 2, Load::uniform, rng);
  const auto probs = random_floats(100 * 8, rng, 0.0f, 1.0f);
  EXPECT_THROW((run_plan<8, 2, 1>(index, &probs, nullptr, 100, -1, 1, LossParams{0.0f, 0.0f, 0.01f, 30})), Error);
}

TEST(RoutingPlan, BiasUpdateMovesTowardMeanLoad) {
  const std::vector<int> counts{10, 30, 20, 20};  // T*K/E = 20
  std::vector<float> bias{0.5f, 0.5f, 0.5f, -1.0f};
  FunctionKernel kernel(&route_bias_update_host<4>);
  launch_route_bias_update(kernel, routing_problem(Family::route_plan, 4, 2, 40), counts.data(), bias.data(), 0.125f);
  EXPECT_EQ(bias, (std::vector<float>{0.625f, 0.375f, 0.5f, -1.0f}));
}

}  // namespace
}  // namespace moejit::test
