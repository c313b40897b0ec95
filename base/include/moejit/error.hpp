// Errors moejit throws. Every message says what went wrong and, where one exists, the fix.
#pragma once
#include <stdexcept>
#include <string>

namespace moejit {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A kernel source failed to compile. what() holds the compiler log with file:line context.
class CompileError : public Error {
 public:
  CompileError(std::string message, std::string log) : Error(std::move(message)), log_(std::move(log)) {}
  const std::string& log() const { return log_; }

 private:
  std::string log_;
};

// A device ran out of memory (the CUDA driver's CUDA_ERROR_OUT_OF_MEMORY): the trainer turns it into
// an error naming what to lower.
class OutOfMemoryError : public Error {
 public:
  using Error::Error;
};

// A backend cannot run here (no CUDA driver, no GPU, host backend built out, ...).
class UnavailableError : public Error {
 public:
  using Error::Error;
};

}  // namespace moejit
