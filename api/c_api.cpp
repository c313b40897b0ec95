// The C API (moejit/moejit.h): the C++ Session behind opaque handles. Each entry point runs its
// body in guarded(), which turns every exception into a status and this thread's last-error text.
#include "moejit/moejit.h"

#include <cstdio>
#include <string>

#include "moejit/session.hpp"
#include "moejit/version.hpp"

struct moejit_session {
  moejit::Session session;
};
struct moejit_kernel {
  std::unique_ptr<moejit::LoadedKernel> kernel;
};

namespace {

static_assert(static_cast<int>(moejit::Rung::exact) == MOEJIT_RUNG_EXACT &&
              static_cast<int>(moejit::Rung::nearest_bucket) == MOEJIT_RUNG_NEAREST_BUCKET &&
              static_cast<int>(moejit::Rung::same_arch) == MOEJIT_RUNG_SAME_ARCH &&
              static_cast<int>(moejit::Rung::shipped) == MOEJIT_RUNG_SHIPPED &&
              static_cast<int>(moejit::Rung::heuristic) == MOEJIT_RUNG_HEURISTIC);

thread_local std::string last_error;

// A failure the C layer itself detects, with the status it maps to.
struct CError {
  moejit_status status;
  std::string message;
};

template <typename F>
moejit_status guarded(F&& body) {
  try {
    body();
    return MOEJIT_OK;
  } catch (const CError& e) {
    last_error = e.message;
    return e.status;
  } catch (const moejit::InvalidProblemError& e) {
    last_error = e.what();
    return MOEJIT_ERROR_BAD_SHAPE;
  } catch (const moejit::CacheError& e) {
    last_error = e.what();
    return MOEJIT_ERROR_CACHE;
  } catch (const moejit::UnavailableError& e) {
    last_error = e.what();
    return MOEJIT_ERROR_UNAVAILABLE;
  } catch (const moejit::CompileError& e) {
    last_error = std::string(e.what()) + "\n" + e.log();
    return MOEJIT_ERROR_COMPILE;
  } catch (const std::exception& e) {
    last_error = e.what();
    return MOEJIT_ERROR_FAILED;
  } catch (...) {
    last_error = "unknown failure inside moejit";
    return MOEJIT_ERROR_FAILED;
  }
}

template <typename T>
T& need(T* pointer, const char* what) {
  if (!pointer) throw CError{MOEJIT_ERROR_INVALID_ARGUMENT, std::string(what) + " is NULL"};
  return *pointer;
}

const char* need_text(const char* text, const char* what) {
  if (!text) throw CError{MOEJIT_ERROR_INVALID_ARGUMENT, std::string(what) + " is NULL"};
  return text;
}

// The C struct to a Problem, telling an unknown family, a bad dtype and a bad shape apart.
moejit::Problem to_problem(const moejit_problem* p) {
  const moejit_problem& in = need(p, "problem");
  const auto family = moejit::find_family(need_text(in.family, "problem->family"));
  if (!family)
    throw CError{MOEJIT_ERROR_UNKNOWN_FAMILY, "unknown kernel family '" + std::string(in.family) +
                                                  "': known families are " + moejit::known_family_names()};
  moejit::DType dtype;
  try {
    dtype = moejit::parse_dtype(need_text(in.dtype, "problem->dtype"));
  } catch (const moejit::Error& e) {
    throw CError{MOEJIT_ERROR_INVALID_ARGUMENT, e.what()};
  }
  const moejit::ShapeKind kind = moejit::family_info(*family).shape;
  try {
    return moejit::Problem(*family, dtype, moejit::parse_shape_text(kind, need_text(in.shape, "problem->shape")),
                           in.tokens);
  } catch (const moejit::Error& e) {
    throw CError{MOEJIT_ERROR_BAD_SHAPE, std::string("bad shape for ") + in.family + ": " + e.what()};
  }
}

void copy_text(char* out, size_t size, const std::string& text) {
  std::snprintf(out, size, "%s", text.c_str());
}

void to_choice(const moejit::Choice& c, moejit_choice* out) {
  copy_text(out->config, sizeof out->config, c.config.to_string());
  out->rung = static_cast<moejit_rung>(c.rung);
  out->time_ms = c.time_ms;
  copy_text(out->uri, sizeof out->uri, c.uri);
}

}  // namespace

extern "C" {

const char* moejit_version(void) {
  return moejit::kVersion;
}

const char* moejit_last_error(void) {
  return last_error.c_str();
}

const char* moejit_status_name(moejit_status status) {
  switch (status) {
    case MOEJIT_OK:
      return "MOEJIT_OK";
    case MOEJIT_ERROR_INVALID_ARGUMENT:
      return "MOEJIT_ERROR_INVALID_ARGUMENT";
    case MOEJIT_ERROR_UNKNOWN_FAMILY:
      return "MOEJIT_ERROR_UNKNOWN_FAMILY";
    case MOEJIT_ERROR_BAD_SHAPE:
      return "MOEJIT_ERROR_BAD_SHAPE";
    case MOEJIT_ERROR_CACHE:
      return "MOEJIT_ERROR_CACHE";
    case MOEJIT_ERROR_UNAVAILABLE:
      return "MOEJIT_ERROR_UNAVAILABLE";
    case MOEJIT_ERROR_COMPILE:
      return "MOEJIT_ERROR_COMPILE";
    case MOEJIT_ERROR_FAILED:
      return "MOEJIT_ERROR_FAILED";
  }
  return "(not a moejit_status)";
}

const char* moejit_rung_name(moejit_rung rung) {
  if (rung < MOEJIT_RUNG_EXACT || rung > MOEJIT_RUNG_HEURISTIC) return "(not a moejit_rung)";
  return moejit::to_string(static_cast<moejit::Rung>(rung));
}

moejit_status moejit_session_open(const moejit_session_options* options, moejit_session** session) {
  return guarded([&] {
    moejit_session*& out = need(session, "session");
    out = nullptr;
    moejit::SessionOptions o;
    if (options && options->backend) o.backend = options->backend;
    if (options && options->tuning_dir) o.tuning_dir = options->tuning_dir;
    if (options) o.threads = options->threads, o.cuda_stream = options->cuda_stream;
    out = new moejit_session{moejit::Session(o)};
  });
}

void moejit_session_close(moejit_session* session) {
  delete session;
}

moejit_status moejit_lookup(moejit_session* session, const moejit_problem* problem, moejit_choice* choice) {
  return guarded([&] {
    moejit::Session& s = need(session, "session").session;
    to_choice(s.lookup(to_problem(problem)), &need(choice, "choice"));
  });
}

moejit_status moejit_tune(moejit_session* session, const moejit_problem* problem, int max_candidates,
                          double max_seconds, moejit_choice* choice) {
  return guarded([&] {
    moejit::Session& s = need(session, "session").session;
    const moejit::Choice c = s.tune(to_problem(problem), {max_candidates, max_seconds, true});
    if (choice) to_choice(c, choice);
  });
}

moejit_status moejit_tune_layer(moejit_session* session, const moejit_layer* layer, const int64_t* tokens, int n_tokens,
                                int max_candidates, double max_seconds, int* calls, int* tuned) {
  return guarded([&] {
    moejit::Session& s = need(session, "session").session;
    const moejit_layer& in = need(layer, "layer");
    moejit::LayerSpec spec;
    try {
      spec.dtype = moejit::parse_dtype(need_text(in.dtype, "layer->dtype"));
    } catch (const moejit::Error& e) {
      throw CError{MOEJIT_ERROR_INVALID_ARGUMENT, e.what()};
    }
    spec.d_model = in.d_model, spec.d_expert = in.d_expert, spec.experts = in.experts, spec.top_k = in.top_k;
    if (n_tokens < 0 || (n_tokens > 0 && !tokens))
      throw CError{MOEJIT_ERROR_INVALID_ARGUMENT, "tokens: NULL or a negative count"};
    const moejit::LayerTuning t =
        s.tune_layer(spec, std::span<const int64_t>(tokens, size_t(n_tokens)), {max_candidates, max_seconds, true});
    if (calls) *calls = static_cast<int>(t.calls.size()) + t.not_started;
    if (tuned) *tuned = t.tuned();
  });
}

moejit_status moejit_kernel_load(moejit_session* session, const moejit_problem* problem, moejit_kernel** kernel) {
  return guarded([&] {
    moejit_kernel*& out = need(kernel, "kernel");
    out = nullptr;
    moejit::Session& s = need(session, "session").session;
    out = new moejit_kernel{s.load(to_problem(problem))};
  });
}

moejit_status moejit_kernel_choice(const moejit_kernel* kernel, moejit_choice* choice) {
  return guarded([&] { to_choice(need(kernel, "kernel").kernel->choice(), &need(choice, "choice")); });
}

moejit_status moejit_kernel_launch(moejit_kernel* kernel, void* const* tensors, size_t count) {
  return guarded([&] {
    moejit_kernel& k = need(kernel, "kernel");
    if (count > 0 && !tensors) throw CError{MOEJIT_ERROR_INVALID_ARGUMENT, "tensors is NULL"};
    k.kernel->launch(std::span<void* const>(tensors, count));
  });
}

void moejit_kernel_free(moejit_kernel* kernel) {
  delete kernel;
}

moejit_status moejit_synchronize(moejit_session* session) {
  return guarded([&] { need(session, "session").session.synchronize(); });
}

moejit_status moejit_export_bundle(moejit_session* session, const char* path, int* decisions) {
  return guarded([&] {
    const moejit::BundleReport r = need(session, "session").session.export_bundle(need_text(path, "path"));
    if (decisions) *decisions = r.decisions;
  });
}

moejit_status moejit_import_bundle(moejit_session* session, const char* path, int* decisions) {
  return guarded([&] {
    const moejit::BundleReport r = need(session, "session").session.import_bundle(need_text(path, "path"));
    if (decisions) *decisions = r.decisions;
  });
}

}  // extern "C"
