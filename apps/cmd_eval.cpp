// `moejit eval`: validation loss and bits per byte of a checkpoint.
#include <iostream>

#include "checkpoint.hpp"
#include "cli_checks.hpp"
#include "commands.hpp"
#include "trainer.hpp"

namespace moejit::cli {

void add_eval_command(CLI::App& app) {
  struct Flags {
    std::string checkpoint, data;
    int64_t batches = 32;
    unsigned threads = 2;
    std::string backend = runtime::default_backend();
  };
  auto f = std::make_shared<Flags>();
  auto* cmd = app.add_subcommand("eval", "Validation loss and bits per byte of a training checkpoint");
  cmd->add_option(
         "checkpoint", f->checkpoint,
         "A ckpt_step*.safetensors file written by `moejit train`, or the ckpt_step*.index.json of a sharded one")
      ->required();
  cmd->add_option("--data", f->data, "Data as for `moejit train` (default: the fortunes corpus)");
  cmd->add_option("--batches", f->batches, "Validation batches")->capture_default_str()->transform(integer_in(1));
  cmd->add_option("--threads", f->threads, "Worker threads")->capture_default_str()->transform(integer_in(1, 4096));
  cmd->add_option("--backend", f->backend, "Runtime backend (as for `moejit train`)")
      ->capture_default_str()
      ->check(CLI::IsMember({"host", "reference", "cuda"}));
  cmd->callback([f] {
    auto meta = runtime::read_checkpoint_metadata(f->checkpoint);
    runtime::TrainOptions o;
    o.config = runtime::config_from_json(meta["config"]);
    o.data = f->data;
    o.eval_batches = f->batches;
    o.threads = f->threads;
    o.backend = f->backend;
    runtime::Trainer trainer(o);
    trainer.load_weights(f->checkpoint);
    auto e = trainer.evaluate();
    std::cout << "checkpoint " << f->checkpoint << " (step " << meta["step"] << ", " << o.config.name << ")\n"
              << "val loss " << e.loss << " nats, " << e.bits_per_token
              << (trainer.dataset().byte_level ? " bits/byte" : " bits/token") << "\n";
  });
}

}  // namespace moejit::cli
