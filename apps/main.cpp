// moejit: JIT kernel autotuner and MoE training runtime. See README.md and docs/cli.md.
#include <iostream>
#include <new>

#include "commands.hpp"
#include "moejit/error.hpp"
#include "moejit/version.hpp"

int main(int argc, char** argv) {
  CLI::App app{"moejit: JIT-compiled, autotuned Mixture-of-Experts kernels and training runtime"};
  app.set_version_flag("--version", moejit::kVersion);
  app.require_subcommand(1);
  moejit::cli::add_info_command(app);
  moejit::cli::add_cache_command(app);
  moejit::cli::add_compile_command(app);
  moejit::cli::add_tune_command(app);
  moejit::cli::add_bench_command(app);
  moejit::cli::add_train_command(app);
  moejit::cli::add_eval_command(app);
  moejit::cli::add_plan_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::RuntimeError& e) {  // a verb's own exit code (compile: kError when a kernel failed)
    return e.get_exit_code();
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return moejit::cli::kUsage;
  } catch (const std::bad_alloc&) {
    // Reached only where no estimate caught it first (the trainer checks its memory up front).
    std::cerr << "moejit: out of memory: lower the sizes involved (--batch, --tokens, the config's dimensions) or "
                 "free memory\n";
    return moejit::cli::kError;
  } catch (const moejit::UnavailableError& e) {
    std::cerr << "moejit: " << e.what() << '\n';
    return moejit::cli::kUnavailable;
  } catch (const std::exception& e) {
    std::cerr << "moejit: " << e.what() << '\n';
    return moejit::cli::kError;
  }
  return moejit::cli::kOk;
}
