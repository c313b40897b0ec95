#include "trainer.hpp"

#include <chrono>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "checkpoint.hpp"
#include "moejit/error.hpp"
#include "reference_moe_kernels.hpp"
#ifdef MOEJIT_WITH_LLVM
#include "jit_host_moe_kernels.hpp"
#endif

namespace moejit::runtime {
namespace fs = std::filesystem;

// Keeps the first `unique` training tokens (a cap: a smaller split is used whole). The description says
// so, and checkpoints carry it, so a resumed run cannot silently train on another pool.
static void cap_unique_tokens(Dataset& d, int64_t unique) {
  if (unique < 0) throw Error("--unique-tokens must be >= 0 (0: the whole training split)");
  if (unique == 0 || unique >= int64_t(d.train.size())) return;
  d.description += ", first " + std::to_string(unique) + " of " + std::to_string(d.train.size()) + " training tokens";
  d.train.resize(size_t(unique));
}

Trainer::Trainer(TrainOptions options, MoeKernels<float>* kernels)
    : o_(std::move(options)),
      data_(load_dataset(o_.data)),
      seq_len_(o_.config.seq_len),
      par_(std::max(1u, o_.threads)),
      rng_(o_.seed) {
  if (o_.batch < 1 || o_.grad_accum < 1) throw Error("--batch and --grad-accum must be >= 1");
  cap_unique_tokens(data_, o_.unique_tokens);
  if (data_.max_token() >= uint64_t(o_.config.vocab))
    throw Error(
        "the data holds token id " + std::to_string(data_.max_token()) + " but config " + o_.config.name +
        " has vocab " + std::to_string(o_.config.vocab) + ": use a config with a larger vocab" +
        (data_.byte_level ? " (byte-level text needs " + std::to_string(kByteVocab) + ": bytes + end-of-text)" : ""));
  if (!kernels && o_.config.is_moe()) {
    owned_kernels_ = make_moe_kernels(o_.kernels, par_);
    kernels = owned_kernels_.get();
  }
  model_ = std::make_unique<Model<float>>(o_.config, par_, kernels);
  model_->profiler = &profiler_;
  model_->init(rng_);
  opt_ = AdamW(model_->params().size());
  decay_ = decay_mask(model_->tensors(), model_->params().size());
  int64_t tokens = o_.tokens;
  if (tokens <= 0 && o_.compute > 0) tokens = int64_t(o_.compute / train_flops_per_token(o_.config));
  if (tokens <= 0) tokens = TrainOptions::kDefaultTokens;
  schedule_.max_lr = o_.max_lr;
  schedule_.min_lr = o_.min_lr;
  schedule_.total_steps = std::max<int64_t>(1, tokens / tokens_per_step());
  schedule_.warmup_steps = LrSchedule::warmup_rule(schedule_.total_steps, o_.warmup);
  reader_ = std::make_unique<BatchReader>(data_.train, o_.batch, seq_len_);
}

Trainer::~Trainer() = default;

bool Trainer::done() const {
  return step() >= total_steps() || (o_.stop_after >= 0 && step() >= o_.stop_after);
}

StepStats Trainer::train_step() {
  auto start = std::chrono::steady_clock::now();
  StepStats s;
  model_->zero_grad();
  const float scale = 1.0f / float(o_.grad_accum);
  for (int64_t micro = 0; micro < o_.grad_accum; ++micro) {
    reader_->next(inputs_, targets_, rng_);
    s.loss += model_->forward(inputs_.data(), targets_.data(), o_.batch, seq_len_);
    s.ce += model_->ce_loss();
    model_->backward(scale);
  }
  s.loss /= double(o_.grad_accum);
  s.ce /= double(o_.grad_accum);
  {
    auto t = timed(&profiler_, "optimizer");
    s.grad_norm = clip_grad_norm(model_->grads(), 1.0);
    s.lr = schedule_.lr(opt_.step());
    opt_.update(model_->params(), model_->grads(), decay_, s.lr);
  }
  s.step = opt_.step();
  s.tokens = tokens_per_step();
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return s;
}

EvalStats Trainer::evaluate() {
  Profiler* saved = model_->profiler;
  model_->profiler = nullptr;  // evaluation is not part of the training-time profile
  const auto& val = data_.val;
  int64_t B = o_.batch, S = seq_len_;
  while (B > 1 && int64_t(val.size()) < B * S + 1) --B;
  if (int64_t(val.size()) < B * S + 1) S = int64_t(val.size()) - 1;
  int64_t batches = std::max<int64_t>(1, std::min<int64_t>(o_.eval_batches, (int64_t(val.size()) - 1) / (B * S)));
  std::vector<int32_t> in(B * S), tg(B * S);
  double sum = 0;
  for (int64_t b = 0; b < batches; ++b) {
    for (int64_t i = 0; i < B * S; ++i) {
      in[i] = int32_t(val[b * B * S + i]);
      tg[i] = int32_t(val[b * B * S + i + 1]);
    }
    model_->forward(in.data(), tg.data(), B, S);
    sum += model_->ce_loss();
  }
  model_->profiler = saved;
  EvalStats e;
  e.loss = sum / double(batches);
  e.bits_per_token = e.loss / std::log(2.0);
  return e;
}

Metadata Trainer::metadata() const {
  std::ostringstream rng;
  rng << rng_;
  return {{"step", std::to_string(opt_.step())},
          {"total_steps", std::to_string(schedule_.total_steps)},
          {"warmup_steps", std::to_string(schedule_.warmup_steps)},
          {"batch", std::to_string(o_.batch)},
          {"grad_accum", std::to_string(o_.grad_accum)},
          {"seq_len", std::to_string(seq_len_)},
          {"max_lr", std::to_string(o_.max_lr)},
          {"rng", rng.str()},
          {"data_position", std::to_string(reader_->position())},
          {"data_epoch", std::to_string(reader_->epoch())},
          {"data", data_.description},
          {"unique_tokens", std::to_string(data_.train.size())},
          {"config", config_to_json(o_.config)}};
}

fs::path Trainer::save_checkpoint() {
  if (o_.out_dir.empty()) throw Error("no --out directory to write checkpoints to");
  fs::path path = checkpoint_path(o_.out_dir, opt_.step());
  CheckpointTensors t{&model_->tensors(), model_->params().data(), opt_.m().data(), opt_.v().data()};
  moejit::runtime::save_checkpoint(path, t, metadata());
  return path;
}

std::optional<fs::path> Trainer::latest_checkpoint() const {
  auto all = list_checkpoints(o_.out_dir);
  if (all.empty()) return std::nullopt;
  return all.back();
}

void Trainer::resume_from(const fs::path& checkpoint) {
  Metadata m = read_checkpoint_metadata(checkpoint);
  Metadata want = metadata();
  // Checkpoints from before the unique-token cap trained on the whole split.
  if (!m.count("unique_tokens"))
    m["unique_tokens"] = o_.unique_tokens == 0 ? want["unique_tokens"] : "the whole training split";
  for (const char* key : {"total_steps", "batch", "grad_accum", "seq_len", "max_lr", "config", "unique_tokens"})
    if (m[key] != want[key])
      throw Error("checkpoint " + checkpoint.string() + " was written with " + key + " = " + m[key] +
                  ", this run has " + want[key] +
                  ": resume with the same --config, --tokens/--compute, --batch, --grad-accum and --unique-tokens");
  // Load into copies first so that a failure leaves the trainer as it was.
  std::vector<float> params(model_->params().size()), mo(params.size()), vo(params.size());
  CheckpointTensors t{&model_->tensors(), params.data(), mo.data(), vo.data()};
  m = load_checkpoint(checkpoint, t);
  std::istringstream rng(m["rng"]);
  std::mt19937_64 restored;
  rng >> restored;
  if (!rng) throw Error("checkpoint " + checkpoint.string() + " is corrupt: unreadable RNG state");
  model_->params() = std::move(params);
  opt_.m() = std::move(mo);
  opt_.v() = std::move(vo);
  opt_.set_step(std::stoll(m["step"]));
  rng_ = restored;
  reader_->seek(std::stoll(m["data_position"]), std::stoll(m["data_epoch"]));
}

void Trainer::load_weights(const fs::path& checkpoint) {
  std::vector<float> params(model_->params().size());
  load_checkpoint(checkpoint, {&model_->tensors(), params.data(), nullptr, nullptr});
  model_->params() = std::move(params);
}

EvalStats run_training(Trainer& trainer, bool resume, const RunCallbacks& cb) {
  const auto& o = trainer.options();
  auto say = [&](const std::string& s) {
    if (cb.on_message) cb.on_message(s);
  };
  // A fresh run into a folder holding another run's checkpoints would interleave the two (a later
  // --resume picks the highest step, whichever run wrote it): refuse and name the ways out.
  if (!resume && !o.out_dir.empty())
    if (auto latest = trainer.latest_checkpoint())
      throw Error(o.out_dir.string() + " already holds checkpoints of a run (newest: " + latest->filename().string() +
                  "): pass --resume to continue it, or choose another --out (or delete that folder) to start afresh");
  std::ofstream metrics;
  if (!o.out_dir.empty()) {
    fs::create_directories(o.out_dir);
    metrics.open(o.out_dir / "metrics.jsonl", std::ios::app);
  }
  auto log = [&](nlohmann::json j) {
    if (metrics.is_open()) metrics << j.dump() << '\n' << std::flush;
  };
  if (resume) {
    auto latest = trainer.latest_checkpoint();
    if (!latest) throw Error("--resume: no checkpoint in " + o.out_dir.string());
    trainer.resume_from(*latest);
    say("resumed from " + latest->string() + " at step " + std::to_string(trainer.step()));
  }
  EvalStats last;
  auto eval = [&] {
    last = trainer.evaluate();
    log({{"step", trainer.step()},
         {"val_loss", last.loss},
         {"val_bits_per_token", last.bits_per_token},
         {"tokens", trainer.step() * trainer.tokens_per_step()},
         {"epochs", trainer.epochs(trainer.step())}});
    if (cb.on_eval) cb.on_eval(trainer, last);
  };
  if (!resume) eval();
  while (!trainer.done()) {
    StepStats s = trainer.train_step();
    log({{"step", s.step},
         {"loss", s.loss},
         {"ce", s.ce},
         {"lr", s.lr},
         {"grad_norm", s.grad_norm},
         {"tokens_per_s", double(s.tokens) / s.seconds}});
    if (cb.on_step) cb.on_step(trainer, s);
    bool end = trainer.done();
    if ((o.eval_every > 0 && s.step % o.eval_every == 0) || end) eval();
    if (!o.out_dir.empty() && ((o.checkpoint_every > 0 && s.step % o.checkpoint_every == 0) || end))
      say("checkpoint " + trainer.save_checkpoint().string());
  }
  if (trainer.model().config().is_moe()) {
    MoeKernels<float>& k = trainer.model().kernels();
    nlohmann::json kernels = nlohmann::json::array();
    for (const auto& c : k.kernel_choices())
      kernels.push_back({{"kernel", c.kernel}, {"config", c.config}, {"rung", rung_name(c.rung)}});
    log({{"step", trainer.step()},
         {"moe_kernels", k.backend()},
         {"tuning", summarize_tuning(k.kernel_choices())},
         {"kernels", kernels}});
  }
  return last;
}

bool jit_kernels_available() {
#ifdef MOEJIT_WITH_LLVM
  return true;
#else
  return false;
#endif
}

std::unique_ptr<MoeKernels<float>> make_moe_kernels(const std::string& name, ThreadPool& par) {
  if (name == "reference") return std::make_unique<ReferenceMoeKernels<float>>(par);
  if (name == "jit") {
#ifdef MOEJIT_WITH_LLVM
    return std::make_unique<JitHostMoeKernels>();
#else
    throw Error(
        "--kernels jit needs the host backend, which this build lacks (configure with -DMOEJIT_WITH_LLVM=ON) "
        "or use --kernels reference");
#endif
  }
  throw Error("unknown MoE kernels '" + name + "': use jit or reference");
}

}  // namespace moejit::runtime
