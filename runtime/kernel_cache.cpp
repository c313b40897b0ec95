#include "kernel_cache.hpp"

#include <algorithm>

#include "moejit/kernel_spec.hpp"

namespace moejit::runtime {

KernelCache::KernelCache(Backend& backend, const std::filesystem::path& tuning_dir)
    : backend_(backend), lookup_(TuningStore(tuning_dir.empty() ? TuningStore::default_dir() : tuning_dir)) {}

KernelCache::Entry KernelCache::resolve(const Problem& problem) {
  Entry e;
  e.spec = &spec_for(problem.family, backend_.name());
  const std::string key = problem.key();
  auto found = configs_.find(key);
  if (found == configs_.end()) found = configs_.emplace(key, lookup_.lookup(*e.spec, problem, backend_)).first;
  e.result = &found->second;
  const std::string loaded_key = key + "|" + e.result->config.to_string();
  auto it = loaded_.find(loaded_key);
  if (it == loaded_.end()) {
    const Source source = e.spec->render(problem, e.result->config, backend_.device());
    auto binary = backend_.build(source);
    std::vector<std::unique_ptr<Kernel>> kernels;
    for (const auto& entry : source.entries) kernels.push_back(backend_.load(binary, entry));
    it = loaded_.emplace(loaded_key, std::move(kernels)).first;
  }
  e.kernels = &it->second;
  return e;
}

void ChoiceLog::record(const std::string& kernel, const KernelCache::Entry& e) {
  const Rung rung = e.result->rung;
  auto [it, fresh] = index_.emplace(kernel, choices_.size());
  if (fresh) {
    choices_.push_back({kernel, e.config().to_string(), rung});
    return;
  }
  KernelChoice& c = choices_[it->second];
  c.config = e.config().to_string();
  c.rung = std::max(*c.rung, rung);  // the worst rung that served it during the run
}

}  // namespace moejit::runtime
