#include "trainer.hpp"

#if MOEJIT_WITH_NCCL
#include "nccl_comm.hpp"
#else
namespace moejit::runtime {
class NcclCommunicator {};  // never made in a build without NCCL
}  // namespace moejit::runtime
#endif

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "checkpoint.hpp"
#include "data_parallel.hpp"
#include "files.hpp"
#include "memory_estimate.hpp"
#include "moejit/error.hpp"
#include "moejit/log.hpp"

namespace moejit::runtime {
namespace fs = std::filesystem;

namespace {

std::string number_text(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", v);
  return text;
}

}  // namespace

void check_options(const TrainOptions& o) {
  check_trainable(o.config);
  auto fail = [](const std::string& what) { throw Error("invalid training options: " + what); };
  if (o.batch < 1 || o.grad_accum < 1) fail("--batch and --grad-accum must be >= 1");
  if (o.tokens < 0) fail("--tokens must be positive (0: the default), got " + std::to_string(o.tokens));
  if (!std::isfinite(o.compute) || o.compute < 0) fail("--compute must be a finite number of FLOPs >= 0");
  if (!(std::isfinite(o.max_lr) && o.max_lr > 0) || !(std::isfinite(o.min_lr) && o.min_lr >= 0))
    fail("the learning rates must be finite, --lr > 0, got " + number_text(o.max_lr));
  if (o.threads < 1) fail("--threads must be >= 1");
  if (o.expert_parallel < 1) fail("--expert-parallel must be >= 1");
  if (o.overlap_allreduce != "auto" && o.overlap_allreduce != "on" && o.overlap_allreduce != "off")
    fail("--overlap must be auto, on or off, not " + o.overlap_allreduce);
  if (o.device_collectives != "auto" && o.device_collectives != "nccl" && o.device_collectives != "host")
    fail("device collectives must be auto, nccl or host, not " + o.device_collectives);
}

// Keeps the first `unique` training tokens (a cap: a smaller split is used whole). The description says
// so, and checkpoints carry it, so a resumed run cannot silently train on another pool.
static void cap_unique_tokens(Dataset& d, int64_t unique) {
  if (unique < 0) throw Error("--unique-tokens must be >= 0 (0: the whole training split)");
  if (unique == 0 || unique >= int64_t(d.train.size())) return;
  d.description += ", first " + std::to_string(unique) + " of " + std::to_string(d.train.size()) + " training tokens";
  d.train.resize(size_t(unique));
}

Trainer::Trainer(TrainOptions options, Communicator& comm)
    : o_(std::move(options)),
      comm_(comm),
      par_(std::max(1u, o_.threads)),
      backend_(make_step_backend(o_.backend, par_, o_.backend_options)),
      data_(load_dataset(o_.data)),
      seq_len_(o_.config.seq_len),
      rng_(o_.seed) {
  check_options(o_);
  if (o_.batch % comm_.size() != 0)
    throw Error("--batch " + std::to_string(o_.batch) + " is not divisible by the " + std::to_string(comm_.size()) +
                " processes of this job (each trains an equal share of every micro-batch): use a --batch that is "
                "a multiple of " +
                std::to_string(comm_.size()));
  // The router biases follow each rank's own loads: with several processes they would drift apart.
  if (comm_.size() > 1 && o_.config.moe && o_.config.moe->router.bias_update_rate > 0)
    throw Error(
        "auxiliary-loss-free balancing (moe.router.bias_update_rate > 0) runs in one process only so far: "
        "set \"bias_update_rate\": 0 for a multi-process run, or train in one process");
  if (o_.expert_parallel > 1) make_expert_group();
  cap_unique_tokens(data_, o_.unique_tokens);
  if (data_.max_token() >= uint64_t(o_.config.vocab))
    throw Error(
        "the data holds token id " + std::to_string(data_.max_token()) + " but config " + o_.config.name +
        " has vocab " + std::to_string(o_.config.vocab) + ": use a config with a larger vocab" +
        (data_.byte_level ? " (byte-level text needs " + std::to_string(kByteVocab) + ": bytes + end-of-text)" : ""));
  memory_ = estimate_training_memory(o_.config, local_batch(), o_.expert_parallel);
  if (backend_->host_memory())
    check_memory(memory_, available_memory_bytes(), o_.config.name, local_batch());
  else
    check_memory(memory_, backend_->device_free_bytes(), o_.config.name, local_batch(), "this GPU");
  try {
    model_ = std::make_unique<Model<float>>(o_.config, *backend_, expert_group_.get());
    model_->profiler = &profiler_;
    profiler_.use_device_timer(backend_->device_timer());
    model_->init(rng_);
    opt_ = std::make_unique<AdamW<float>>(*model_, expert_group_.get());
  } catch (const OutOfMemoryError& e) {
    out_of_memory(e);
  }
  gradient_groups_ = gradient_groups(model_->tensors(), o_.config.layers, expert_group_ != nullptr);
  // A pool thread spinning for its next job would take a core another rank on this node needs.
  stop_spinning_if_oversubscribed(comm_.ranks_on_this_node(), compute_threads());
  make_device_collectives();
  if (comm_.size() > 1 && !nccl_) {
    const bool wanted =
        o_.overlap_allreduce == "on" ||
        (o_.overlap_allreduce == "auto" &&
         spare_core_for_communication(comm_.ranks_on_this_node(), compute_threads(), hardware_threads()));
    const bool overlap = wanted && backend_->host_memory() && comm_.concurrent_calls();
    reducer_ = std::make_unique<GradientReducer>(*backend_, model_->grads(), overlap);
  }
  int64_t tokens = o_.tokens;
  if (tokens == 0 && o_.compute > 0) {
    const double from_compute = o_.compute / train_flops_per_token(o_.config);
    if (from_compute < double(tokens_per_step()))
      throw Error("--compute " + number_text(o_.compute) + " FLOPs buys " + number_text(from_compute) + " tokens of " +
                  o_.config.name + ", less than one step (" + std::to_string(tokens_per_step()) +
                  " tokens): raise --compute");
    tokens = int64_t(std::min(from_compute, 9e18));
  }
  if (tokens == 0) tokens = TrainOptions::kDefaultTokens;
  schedule_.max_lr = o_.max_lr;
  schedule_.min_lr = o_.min_lr;
  schedule_.total_steps = std::max<int64_t>(1, tokens / tokens_per_step());
  schedule_.warmup_steps = LrSchedule::warmup_rule(schedule_.total_steps, o_.warmup);
  reader_ = std::make_unique<BatchReader>(data_.train, o_.batch, seq_len_);
}

Trainer::~Trainer() = default;

// Ranks [g P, (g+1) P) form expert group g; rank q of a group holds experts [q E/P, (q+1) E/P) (the
// model shards them), and the ranks with the same q in every group (rank % P) hold the same experts:
// their replicas, over which those experts' gradients are summed.
void Trainer::make_expert_group() {
  const int64_t P = o_.expert_parallel, E = o_.config.moe ? o_.config.moe->experts : 0;
  if (!o_.config.moe) throw Error("--expert-parallel needs an MoE config; " + o_.config.name + " is dense");
  if (E % P != 0)
    throw Error("--expert-parallel " + std::to_string(P) + " does not divide the " + std::to_string(E) +
                " experts of " + o_.config.name + ": choose a divisor of " + std::to_string(E));
  if (comm_.size() % P != 0)
    throw Error("--expert-parallel " + std::to_string(P) + " does not divide the " + std::to_string(comm_.size()) +
                " processes of this job: start a multiple of " + std::to_string(P) + " ranks (mpirun -np)");
  expert_group_ = comm_.split(int(comm_.rank() / P), comm_.rank());
  expert_replicas_ = comm_.split(int(comm_.rank() % P), comm_.rank());
}

// Threads a rank computes on: the trainer's and the host kernels' (0: every hardware thread).
unsigned Trainer::compute_threads() const {
  const unsigned kernels = o_.backend_options.kernel_threads ? o_.backend_options.kernel_threads : hardware_threads();
  return std::max(std::max(1u, o_.threads), o_.backend == "host" ? kernels : 1u);
}

// One group of gradient_groups_ posted for summing over the ranks that hold it: the tensors every
// rank holds over all ranks, the sharded experts' over their replicas. Over NCCL, queued on the
// step's stream behind the kernels that finished them.
void Trainer::post_gradients(size_t group) {
  for (const ParamRange& r : gradient_groups_.at(group)) {
#if MOEJIT_WITH_NCCL
    if (nccl_) {
      nccl_->allreduce_sum(model_->grads().at(r.offset).as<float>(), r.size);
      continue;
    }
#endif
    reducer_->post(r.per_expert && expert_replicas_ ? *expert_replicas_ : comm_, r.offset, r.size);
  }
}

// The device backend's gradient sums over NCCL (TrainOptions::device_collectives). Collective: every
// rank says whether NCCL loads, and all use it or none, so no rank waits in an NCCL call for a rank
// that summed through the host.
void Trainer::make_device_collectives() {
  if (backend_->host_memory() || o_.device_collectives == "host") return;
  const bool forced = o_.device_collectives == "nccl";
  if (!forced && comm_.size() == 1) return;
  if (expert_group_) {
    if (forced) throw Error("NCCL gradient sums with --expert-parallel are not supported yet: leave it at 1");
    return;  // the expert exchange goes through the host: so do the gradients
  }
#if MOEJIT_WITH_NCCL
  std::string why;
  const bool here = NcclCommunicator::available(&why);
  const std::vector<std::string> all = comm_.allgather(here ? std::string() : why);
  for (size_t r = 0; r < all.size(); ++r) {
    if (all[r].empty()) continue;
    const std::string what = "rank " + std::to_string(r) + " cannot load NCCL (" + all[r] + ")";
    if (forced) throw Error(what + ": install NCCL (libnccl.so.2) on every machine");
    if (comm_.root()) MOEJIT_LOG(warn, what, "; the GPU gradients are summed through host memory over MPI");
    return;
  }
  nccl_ = std::make_unique<NcclCommunicator>(comm_, backend_->device_stream());
#else
  if (forced)
    throw Error("this moejit was built without NCCL (nccl.h was not found): rebuild with NCCL's headers installed");
#endif
}

int64_t Trainer::parameter_bytes() const {
  return 4 * model_->param_count() * int64_t(sizeof(float));  // parameters, gradients, AdamW m and v
}

int64_t Trainer::unsharded_parameter_bytes() const {
  int64_t n = 0;
  for (const ParamTensor& t : model_->tensors()) n += t.full_size();
  return 4 * n * int64_t(sizeof(float));
}

bool Trainer::done() const {
  return step() >= total_steps() || (o_.stop_after >= 0 && step() >= o_.stop_after);
}

// The losses' sums over ranks (the loss reported is the global batch's), in double.
void Trainer::reduce_over_ranks(LossSums& losses) {
  double sums[2] = {losses.ce, losses.router};
  comm_.allreduce_sum(std::span<double>(sums, 2));
  losses = {sums[0], sums[1]};
}

// The whole step is queued on the backend; its losses and gradient norm are read once, at the end.
// Data parallel: every rank reads the whole micro-batch (so the data position and RNG stay the same
// everywhere) and trains its rows; the gradients are summed over ranks before the update, after the
// ranks have checked that they run the same kernel configs.
void Trainer::out_of_memory(const OutOfMemoryError& e) const {
  throw Error(out_of_memory_advice(e.what(), memory_, o_.config.name, local_batch(), seq_len_));
}

StepStats Trainer::train_step() {
  try {
    return queue_step();
  } catch (const OutOfMemoryError& e) {
    out_of_memory(e);
  }
}

StepStats Trainer::queue_step() {
  auto start = std::chrono::steady_clock::now();
  StepStats s;
  const int64_t ranks = comm_.size(), rows = local_batch() * seq_len_, first = comm_.rank() * rows;
  // Between begin and end the step only queues work (the cuda backend captures it as one graph and
  // replays it), except where the ranks exchange gradients through the host.
  StepScope<float> step(*backend_,
                        ranks > 1 && !nccl_ ? "a data-parallel step sums its gradients through the host" : "");
  model_->zero_grad();
  model_->zero_losses();
  const float scale = 1.0f / float(o_.grad_accum * ranks);
  const bool sum = ranks > 1 || nccl_;  // the gradients are summed over ranks (NCCL: even over one)
  for (int64_t micro = 0; micro < o_.grad_accum; ++micro) {
    reader_->next(inputs_, targets_, rng_);
    model_->forward(inputs_.data() + first, targets_.data() + first, local_batch(), seq_len_);
    // The last micro-batch's backward finishes the gradients: each layer's is summed from then on.
    const bool last = micro + 1 == o_.grad_accum;
    model_->backward(scale,
                     sum && last ? [this](int layer) { post_gradients(size_t(layer)); } : std::function<void(int)>());
  }
  if (sum) post_gradients(gradient_groups_.size() - 1);
  if (reducer_) {
    {
      auto t = timed(&profiler_, "allreduce");  // what the backward did not hide
      reducer_->wait();
    }
    if (reducer_->overlapping()) profiler_.add("allreduce.overlapped", reducer_->last_busy_seconds());
  }
  if (ranks > 1) {
    // Before the update: no rank applies gradients summed over ranks that ran other kernel configs.
    verify_same_decisions(comm_, shared_decisions(backend_->kernel_choices(), expert_group_ != nullptr));
  }
  s.lr = schedule_.lr(opt_->steps());
  {
    auto t = timed(&profiler_, "optimizer");
    opt_->step(s.lr);
    model_->update_router_bias();  // from this step's loads, for the next step's selection
  }
  step.end();
  LossSums losses = model_->read_losses();
  profiler_.settle();  // the step's device-timed scopes (the device is done: the losses were read)
  if (ranks > 1) {
    auto t = timed(&profiler_, "allreduce");
    reduce_over_ranks(losses);
  }
  s.loss = losses.total() / double(o_.grad_accum * ranks);
  s.ce = losses.ce / double(o_.grad_accum * ranks);
  s.grad_norm = double(backend_->download<float>(opt_->grad_norm(), 1)[0]);
  s.routers = model_->read_router_stats();
  s.step = opt_->steps();
  s.tokens = tokens_per_step();
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return s;
}

EvalStats Trainer::evaluate() {
  if (data_.val.size() < 2)
    throw Error("no validation data to evaluate on (" + std::to_string(data_.val.size()) + " tokens)");
  Profiler* saved = model_->profiler;
  model_->profiler = nullptr;  // evaluation is not part of the training-time profile
  const auto& val = data_.val;
  int64_t B = o_.batch, S = seq_len_;
  while (B > 1 && int64_t(val.size()) < B * S + 1) --B;
  if (int64_t(val.size()) < B * S + 1) S = int64_t(val.size()) - 1;
  int64_t batches = std::max<int64_t>(1, std::min<int64_t>(o_.eval_batches, (int64_t(val.size()) - 1) / (B * S)));
  std::vector<int32_t> in(B * S), tg(B * S);
  model_->zero_losses();
  for (int64_t b = 0; b < batches; ++b) {
    for (int64_t i = 0; i < B * S; ++i) {
      in[i] = int32_t(val[b * B * S + i]);
      tg[i] = int32_t(val[b * B * S + i + 1]);
    }
    model_->forward(in.data(), tg.data(), B, S);
  }
  const double sum = model_->read_losses().ce;
  model_->profiler = saved;
  EvalStats e;
  e.loss = sum / double(batches);
  e.bits_per_token = e.loss / std::log(2.0);
  return e;
}

Metadata Trainer::metadata() const {
  std::ostringstream rng;
  rng << rng_;
  return {{"step", std::to_string(opt_->steps())},
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

// Data parallel: every rank holds the same parameters and optimiser state (checked here), rank 0
// writes the file. Sharded experts: the ranks of group 0 write a shard each, then rank 0 the index.
fs::path Trainer::save_checkpoint() {
  if (o_.out_dir.empty()) throw Error("no --out directory to write checkpoints to");
  const int64_t n = model_->param_count();
  std::vector<float> params = model_->read_params();
  verify_same_parameters_everywhere(params);
  if (!expert_group_ && !comm_.root()) return checkpoint_path(o_.out_dir, opt_->steps());
  std::vector<float> m = backend_->download<float>(opt_->m(), n), v = backend_->download<float>(opt_->v(), n),
                     state = model_->read_state();
  CheckpointTensors t{&model_->tensors(), params.data(), m.data(), v.data(), &model_->state_tensors(), state.data()};
  if (expert_group_) return save_shards(checkpoint_index_path(o_.out_dir, opt_->steps()), t);
  fs::path path = checkpoint_path(o_.out_dir, opt_->steps());
  moejit::runtime::save_checkpoint(path, t, metadata());
  return path;
}

// Every rank's parameters are checked against the ranks that should hold the same bits: all of them
// for the tensors every rank holds, the replicas of its expert shard for the rest.
void Trainer::verify_same_parameters_everywhere(const std::vector<float>& params) {
  if (!expert_group_) {
    verify_same_parameters(comm_, params);
    return;
  }
  std::vector<float> shared;
  for (const ParamRange& r : param_ranges(model_->tensors()))
    if (!r.per_expert) shared.insert(shared.end(), params.begin() + r.offset, params.begin() + r.offset + r.size);
  verify_same_parameters(comm_, shared);
  try {
    verify_same_parameters(*expert_replicas_, params);
  } catch (const Error& e) {  // its ranks are counted within the shard's replicas: say which
    const int64_t P = o_.expert_parallel, q = comm_.rank() % P;
    throw Error("among the replicas of expert shard " + std::to_string(q) + " (ranks " + std::to_string(q) + ", " +
                std::to_string(q + P) + ", ...; replica r is rank r*" + std::to_string(P) + "+" + std::to_string(q) +
                "): " + e.what());
  }
}

// Shard q (rank q of expert group 0) holds its experts' tensors, shard 0 every other tensor as well;
// the other groups hold the same bits (verified) and write nothing. The index comes last, once every
// shard is on disk (a gather waits for them), so an index never names a missing or torn shard.
fs::path Trainer::save_shards(const fs::path& index, const CheckpointTensors& t) {
  const int64_t P = o_.expert_parallel, E = o_.config.moe->experts, step = opt_->steps();
  auto shard_tensors = [&](int64_t q) {
    std::vector<ParamTensor> kept = model_->tensors();
    if (q > 0) std::erase_if(kept, [](const ParamTensor& x) { return !x.per_expert(); });
    return kept;
  };
  if (comm_.rank() < P) {
    const std::vector<ParamTensor> mine = shard_tensors(comm_.rank());
    const std::vector<ParamTensor> no_state;
    CheckpointTensors shard = t;
    shard.tensors = &mine;
    if (comm_.rank() > 0) shard.state_tensors = &no_state;
    Metadata meta = metadata();
    meta["shard"] = std::to_string(comm_.rank()) + " of " + std::to_string(P);
    moejit::runtime::save_checkpoint(checkpoint_shard_path(o_.out_dir, step, comm_.rank(), P), shard, meta);
  }
  comm_.allgather("written");
  if (!comm_.root()) return index;
  std::vector<CheckpointShard> shards;
  for (int64_t q = 0; q < P; ++q) {
    CheckpointShard s{checkpoint_shard_path(o_.out_dir, step, q, P), q * (E / P), E / P, {}};
    for (const ParamTensor& x : shard_tensors(q)) s.tensors.push_back(x.name);
    if (q == 0)
      for (const ParamTensor& x : model_->state_tensors()) s.tensors.push_back(x.name);
    shards.push_back(std::move(s));
  }
  save_checkpoint_index(index, step, comm_.size(), P, shards);
  return index;
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
  std::vector<float> params(model_->param_count()), mo(params.size()), vo(params.size()),
      state(model_->read_state().size());
  CheckpointTensors t{&model_->tensors(), params.data(), mo.data(), vo.data(), &model_->state_tensors(), state.data()};
  m = load_checkpoint(checkpoint, t);
  std::istringstream rng(m["rng"]);
  std::mt19937_64 restored;
  rng >> restored;
  if (!rng) throw Error("checkpoint " + checkpoint.string() + " is corrupt: unreadable RNG state");
  model_->write_params(params);
  model_->write_state(state);
  backend_->upload<float>(opt_->m(), mo);
  backend_->upload<float>(opt_->v(), vo);
  opt_->set_steps(std::stoll(m["step"]));
  rng_ = restored;
  reader_->seek(std::stoll(m["data_position"]), std::stoll(m["data_epoch"]));
}

void Trainer::load_weights(const fs::path& checkpoint) {
  std::vector<float> params(model_->param_count());
  load_checkpoint(checkpoint, {&model_->tensors(), params.data(), nullptr, nullptr});
  model_->write_params(params);
}

namespace {

// <out>/metrics.jsonl, one JSON object per line. Opened before the first step, so an unwritable
// --out fails at once; on resume cut back to the checkpoint's step, since the steps after it run
// again; a failed write stops the run (a gap in the metrics would pass unnoticed).
class MetricsFile {
 public:
  MetricsFile(fs::path path, int64_t keep_through_step) : path_(std::move(path)) {
    if (keep_through_step >= 0) truncate_after(keep_through_step);
    out_.open(path_, std::ios::app);
    if (!out_) throw Error("cannot open " + path_.string() + " for writing: " + std::strerror(errno));
  }
  void write(const nlohmann::json& j) {
    out_ << j.dump() << '\n' << std::flush;
    if (!out_) throw Error("cannot write " + path_.string() + " (is the disk full?)");
  }

 private:
  void truncate_after(int64_t step) {
    const auto text = read_file(path_);
    if (!text) return;
    std::istringstream in(*text);
    std::string kept;
    for (std::string line; std::getline(in, line);) {
      const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      // A torn last line (a kill mid-write) is dropped with the steps after the checkpoint.
      if (j.is_object() && j.contains("step") && j["step"].is_number_integer() && j["step"].get<int64_t>() <= step)
        kept += line + '\n';
    }
    write_file_atomic(path_, kept);
  }

  fs::path path_;
  std::ofstream out_;
};

// Per MoE layer: {"layer", "load_min", "load_max", "load_mean", "imbalance", "dropped", "bias_norm"}.
nlohmann::json router_metrics(const std::vector<RouterStats>& routers) {
  nlohmann::json all = nlohmann::json::array();
  for (const RouterStats& r : routers)
    all.push_back({{"layer", r.layer},
                   {"load_min", r.load_min},
                   {"load_max", r.load_max},
                   {"load_mean", r.load_mean},
                   {"imbalance", r.imbalance},
                   {"dropped", r.dropped},
                   {"bias_norm", r.bias_norm}});
  return all;
}

// The error that stops a run whose loss or gradient became NaN or infinite.
Error diverged(const StepStats& s, const TrainOptions& o) {
  const auto g = number_text;
  return Error(
      "step " + std::to_string(s.step) + ": the training loss is " + g(s.loss) + " and the gradient norm " +
      g(s.grad_norm) + ": the run diverged. Likely cause: a learning rate too high for this model (" + g(s.lr) +
      " at this step, peak --lr " + g(o.max_lr) + "); lower --lr or lengthen --warmup" +
      (o.out_dir.empty() ? std::string() : "; the checkpoints before this step stay in " + o.out_dir.string()));
}

}  // namespace

EvalStats run_training(Trainer& trainer, bool resume, const RunCallbacks& cb) {
  const auto& o = trainer.options();
  // Data parallel: every rank trains, rank 0 alone reports and writes the metrics.
  const bool root = trainer.comm().root();
  auto say = [&](const std::string& s) {
    if (cb.on_message && root) cb.on_message(s);
  };
  // A fresh run into a folder holding another run's checkpoints would interleave the two (a later
  // --resume picks the highest step, whichever run wrote it): refuse and name the ways out.
  if (!resume && !o.out_dir.empty())
    if (auto latest = trainer.latest_checkpoint())
      throw Error(o.out_dir.string() + " already holds checkpoints of a run (newest: " + latest->filename().string() +
                  "): pass --resume to continue it, or choose another --out (or delete that folder) to start afresh");
  if (!o.out_dir.empty())
    if (const std::string why = directory_write_problem(o.out_dir); !why.empty())
      throw Error("--out " + o.out_dir.string() + " is not writable (" + why +
                  "): checkpoints and metrics.jsonl go there; choose another --out");
  if (resume) {
    auto latest = trainer.latest_checkpoint();
    if (!latest) throw Error("--resume: no checkpoint in " + o.out_dir.string());
    trainer.resume_from(*latest);
    say("resumed from " + latest->string() + " at step " + std::to_string(trainer.step()));
  }
  std::optional<MetricsFile> metrics;
  if (!o.out_dir.empty() && root) metrics.emplace(o.out_dir / "metrics.jsonl", resume ? trainer.step() : -1);
  auto log = [&](const nlohmann::json& j) {
    if (metrics) metrics->write(j);
  };
  EvalStats last;
  auto eval = [&] {
    last = trainer.evaluate();
    log({{"step", trainer.step()},
         {"val_loss", last.loss},
         {"val_bits_per_token", last.bits_per_token},
         {"tokens", trainer.step() * trainer.tokens_per_step()},
         {"epochs", trainer.epochs(trainer.step())}});
    if (cb.on_eval && root) cb.on_eval(trainer, last);
  };
  if (!resume) eval();
  while (!trainer.done()) {
    StepStats s = trainer.train_step();
    nlohmann::json line = {
        {"step", s.step}, {"loss", s.loss},           {"ce", s.ce},
        {"lr", s.lr},     {"grad_norm", s.grad_norm}, {"tokens_per_s", double(s.tokens) / s.seconds}};
    if (!s.routers.empty()) line["moe"] = router_metrics(s.routers);
    log(line);
    if (!std::isfinite(s.loss) || !std::isfinite(s.grad_norm)) throw diverged(s, o);
    if (cb.on_step && root) cb.on_step(trainer, s);
    bool end = trainer.done();
    if ((o.eval_every > 0 && s.step % o.eval_every == 0) || end) eval();
    if (!o.out_dir.empty() && ((o.checkpoint_every > 0 && s.step % o.checkpoint_every == 0) || end))
      say("checkpoint " + trainer.save_checkpoint().string());
  }
  const auto choices = trainer.backend().kernel_choices();
  nlohmann::json kernels = nlohmann::json::array();
  for (const auto& c : choices)
    kernels.push_back({{"kernel", c.kernel}, {"config", c.config}, {"rung", rung_name(c.rung)}});
  log({{"step", trainer.step()},
       {"backend", trainer.backend().name()},
       {"processes", trainer.comm().size()},
       {"tuning", summarize_tuning(choices)},
       {"kernels", kernels}});
  return last;
}

}  // namespace moejit::runtime
