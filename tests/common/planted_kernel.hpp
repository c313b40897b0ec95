// A kernel for testing workload checks: wraps a real one, optionally skips it (its outputs keep
// their poison), then lets `after` tamper with the launch's outputs through its argument array.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "moejit/backend.hpp"

namespace moejit::test {

class PlantedKernel final : public Kernel {
 public:
  PlantedKernel(std::unique_ptr<Kernel> inner, bool skip, std::function<void(void**)> after)
      : inner_(std::move(inner)), skip_(skip), after_(std::move(after)) {}
  void launch(const LaunchDims& dims, void** args) override {
    if (!skip_) inner_->launch(dims, args);
    if (after_) after_(args);
  }
  const std::string& name() const override { return inner_->name(); }

 private:
  std::unique_ptr<Kernel> inner_;
  bool skip_;
  std::function<void(void**)> after_;
};

}  // namespace moejit::test
