// Tunes a SwiGLU activation on the host, looks its decision up, loads the tuned kernel, runs it and
// checks it against a plain loop. Uses only the installed C++ API (moejit/session.hpp).
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "moejit/session.hpp"

int main() {
  try {
    moejit::Session session({.backend = "host", .tuning_dir = {}, .threads = 2});
    const int64_t tokens = 64, width = 256;
    const moejit::Problem problem(moejit::Family::swiglu_fwd, moejit::DType::f32, moejit::RowsShape{1, width}, tokens);
    session.tune(problem, {.max_candidates = 3, .max_seconds = 0, .quiet = true});
    const moejit::Choice choice = session.lookup(problem);
    std::printf("%s -> %s (rung %s, %.4f ms)\n", problem.to_string().c_str(), choice.config.to_string().c_str(),
                moejit::to_string(choice.rung), choice.time_ms);
    if (choice.rung != moejit::Rung::exact) {
      std::fprintf(stderr, "expected the decision just tuned (rung exact)\n");
      return 1;
    }

    std::mt19937 rng(std::random_device{}());
    std::uniform_real_distribution<float> dist(-3.0f, 3.0f);
    std::vector<float> gate_up(tokens * 2 * width), out(tokens * width, std::nanf(""));
    for (float& v : gate_up) v = dist(rng);
    auto kernel = session.load(problem);
    void* tensors[] = {gate_up.data(), out.data()};
    kernel->launch(tensors);

    int bad = 0;
    for (int64_t r = 0; r < tokens; ++r)
      for (int64_t c = 0; c < width; ++c) {
        const double g = gate_up[r * 2 * width + c], u = gate_up[r * 2 * width + width + c];
        const double want = g / (1.0 + std::exp(-g)) * u, got = out[r * width + c];
        if (!(std::fabs(got - want) <= 1e-5 + 1e-4 * std::fabs(want)) && bad++ < 5)
          std::fprintf(stderr, "out[%ld, %ld] = %g, expected %g\n", (long)r, (long)c, got, want);
      }
    std::printf("%s: %d of %ld elements wrong\n", bad ? "FAILED" : "ok", bad, (long)(tokens * width));
    return bad ? 1 : 0;
  } catch (const moejit::Error& e) {
    std::fprintf(stderr, "moejit: %s\n", e.what());
    return 1;
  }
}
