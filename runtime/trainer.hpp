// The training loop: batches -> forward/backward with gradient accumulation -> clip -> AdamW with the
// cosine schedule; periodic validation (loss, bits per byte), JSONL metrics, atomic checkpoints, exact
// resume. Deterministic: the same options give bit-identical losses, interrupted-and-resumed or not.
// Data parallel over a Communicator (comm.hpp): with R ranks every micro-batch of --batch B sequences
// is split, rank r training sequences [r B/R, (r+1) B/R), and the gradients are summed over ranks
// before the update; so R ranks compute what one process computes with --batch B/R --grad-accum R
// (the same sequences, the same router statistics per B/R sequences), up to the order of the sums.
#pragma once
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include "backend_choice.hpp"
#include "checkpoint.hpp"
#include "comm.hpp"
#include "data.hpp"
#include "gradient_reducer.hpp"
#include "memory_estimate.hpp"
#include "model.hpp"
#include "optimizer.hpp"

namespace moejit::runtime {

class NcclCommunicator;  // nccl_comm.hpp (built with MOEJIT_WITH_NCCL)

struct TrainOptions {
  ModelConfig config;
  int64_t tokens = 0;             // training tokens D; 0: from `compute`, else kDefaultTokens
  double compute = 0;             // training FLOPs C (> 0: D = C / train_flops_per_token, at least a step)
  std::string data;               // see load_dataset(); empty: the fortunes corpus
  std::filesystem::path out_dir;  // checkpoints + metrics.jsonl; empty: nothing written
  int64_t batch = 8;              // sequences per micro-batch
  int64_t grad_accum = 1;         // micro-batches per optimiser step
  double max_lr = 3e-3, min_lr = 1e-5;
  int64_t warmup = -1;       // -1: LrSchedule::warmup_rule
  int64_t eval_every = 100;  // steps; 0: only at the end
  int64_t eval_batches = 8;
  int64_t checkpoint_every = 0;  // steps; 0: only at the end
  unsigned threads = 2;
  uint64_t seed = 1337;
  int64_t stop_after = -1;  // stop after this many steps without changing the schedule (tests)
  // The runtime backend (backend_choice.hpp): "reference" (plain C++ loops) or "host" (JIT-compiled
  // host kernels with configs from the tuning cache). `moejit train` defaults to default_backend().
  std::string backend = "reference";
  BackendOptions backend_options;
  // Train on at most the first `unique_tokens` tokens of the training split (0: all of it), so that
  // runs given more tokens than the pool repeat it (epochs) instead of seeing new data.
  int64_t unique_tokens = 0;
  // Expert parallel: groups of this many consecutive ranks split every MoE layer's experts (it must
  // divide the experts and the number of ranks); 1: every rank computes every expert.
  int64_t expert_parallel = 1;
  // Data parallel: sum each layer's gradients over the ranks while the backward computes the layers
  // below (gradient_reducer.hpp), where the backend's memory is process memory and MPI allows two
  // threads to call it: "on"; "off": after the backward (the same bits); "auto": on where the node
  // has a core to spare for the communication thread (spare_core_for_communication).
  std::string overlap_allreduce = "auto";
  // Device backends (cuda) under data parallelism: "nccl" sums the gradients in device memory over
  // NCCL, queued on the step's stream layer by layer as the backward finishes them (inside the
  // step's CUDA graph); "host" through host buffers over MPI, after the backward; "auto": nccl where
  // this build and every rank can load NCCL, else host. "nccl" runs the path with one process too.
  std::string device_collectives = "auto";

  static constexpr int64_t kDefaultTokens = 1 << 20;
};

// Throws Error naming the flag for options no run can use (negative counts, a non-finite rate).
void check_options(const TrainOptions& options);

struct StepStats {
  int64_t step = 0;  // steps done after this one
  double loss = 0;   // training loss incl. router losses, mean over micro-batches
  double ce = 0;     // cross-entropy part
  double lr = 0, grad_norm = 0, seconds = 0;
  int64_t tokens = 0;
  std::vector<RouterStats> routers;  // per MoE layer: loads, drops, bias norm of this step
};

struct EvalStats {
  double loss = 0;            // mean cross-entropy (nats per token)
  double bits_per_token = 0;  // = bits per byte for byte-level data
};

class Trainer {
 public:
  // Makes the backend options.backend names first (so that a backend that cannot run here fails
  // before any work), then loads the data and builds and initialises the model.
  // `comm`: the ranks of a data-parallel job (process_communicator(): one process unless started by
  // mpirun); --batch must be divisible by their number.
  explicit Trainer(TrainOptions options, Communicator& comm = process_communicator());
  ~Trainer();

  int64_t step() const { return opt_->steps(); }
  int64_t total_steps() const { return schedule_.total_steps; }
  bool done() const;
  StepStats train_step();
  EvalStats evaluate();
  // Writes <out_dir>/ckpt_step<N>.safetensors atomically; returns its path. With sharded experts the
  // ranks of the first expert group write a shard each and rank 0 then the index (checkpoint.hpp),
  // whose path it returns.
  std::filesystem::path save_checkpoint();
  // Restores weights, optimiser state, step, RNG and data position. Throws Error (the model is
  // untouched then) for a corrupt file or one written with other options.
  void resume_from(const std::filesystem::path& checkpoint);
  // Weights only (for `moejit eval`); the checkpoint's model config must equal this trainer's.
  void load_weights(const std::filesystem::path& checkpoint);
  // The newest checkpoint in out_dir, or nullopt.
  std::optional<std::filesystem::path> latest_checkpoint() const;

  Model<float>& model() { return *model_; }
  StepBackend<float>& backend() { return *backend_; }
  const Dataset& dataset() const { return data_; }
  const TrainOptions& options() const { return o_; }
  const LrSchedule& schedule() const { return schedule_; }
  // The memory this run needs, estimated before anything was allocated (at local_batch()).
  const MemoryEstimate& memory() const { return memory_; }
  Profiler& profiler() { return profiler_; }
  Communicator& comm() const { return comm_; }
  int64_t local_batch() const { return o_.batch / comm_.size(); }  // sequences per rank per micro-batch
  // Bytes of the parameters, gradients and AdamW moments this rank holds (its experts' only when they
  // are sharded), and what one process holding every expert would hold.
  int64_t parameter_bytes() const;
  int64_t unsharded_parameter_bytes() const;
  // Data parallel: whether each layer's gradients are summed while the backward runs (GradientReducer).
  bool overlaps_allreduce() const { return reducer_ && reducer_->overlapping(); }
  // Whether the gradients are summed in device memory over NCCL (TrainOptions::device_collectives).
  bool sums_over_nccl() const { return nccl_ != nullptr; }
  int64_t tokens_per_step() const { return o_.batch * seq_len_ * o_.grad_accum; }
  // Passes over the (unique) training tokens after `steps` steps.
  double epochs(int64_t steps) const { return double(steps * tokens_per_step()) / double(data_.train.size()); }

 private:
  Metadata metadata() const;
  StepStats queue_step();  // train_step without the out-of-memory advice
  [[noreturn]] void out_of_memory(const OutOfMemoryError& e) const;

  void reduce_over_ranks(LossSums& losses);
  void make_expert_group();
  void post_gradients(size_t group);
  void make_device_collectives();
  unsigned compute_threads() const;
  void verify_same_parameters_everywhere(const std::vector<float>& params);
  std::filesystem::path save_shards(const std::filesystem::path& index, const CheckpointTensors& t);

  TrainOptions o_;
  Communicator& comm_;
  std::unique_ptr<Communicator> expert_group_;     // expert_parallel > 1: the P ranks that split the experts
  std::unique_ptr<Communicator> expert_replicas_;  // and the ranks holding the same experts as this one
  ThreadPool par_;
  std::unique_ptr<StepBackend<float>> backend_;
  Dataset data_;
  int64_t seq_len_;
  MemoryEstimate memory_;
  Profiler profiler_;
  std::unique_ptr<Model<float>> model_;
  std::unique_ptr<AdamW<float>> opt_;
  LrSchedule schedule_;
  std::mt19937_64 rng_;
  std::unique_ptr<BatchReader> reader_;
  std::vector<int32_t> inputs_, targets_;  // the global micro-batch (B, S); this rank trains its rows
  // Data parallel: the gradient ranges of each layer, then of the tensors outside the layers
  // (gradient_groups), and the reducer that sums them as the backward finishes them.
  std::vector<std::vector<ParamRange>> gradient_groups_;
  std::unique_ptr<GradientReducer> reducer_;
  std::unique_ptr<NcclCommunicator> nccl_;  // device_collectives: the device gradients' sums
};

// The whole run as the CLI does it: resume if asked, train, evaluate every eval_every steps, append
// metrics to <out_dir>/metrics.jsonl, checkpoint, final evaluation. `on_step`/`on_eval` drive the
// progress display.
struct RunCallbacks {
  std::function<void(const Trainer&, const StepStats&)> on_step;
  std::function<void(const Trainer&, const EvalStats&)> on_eval;
  std::function<void(const std::string&)> on_message;
};
// At the end it logs the backend and which config and tuning-cache rung served each kernel
// (summarize_tuning).
EvalStats run_training(Trainer& trainer, bool resume, const RunCallbacks& callbacks);

}  // namespace moejit::runtime
