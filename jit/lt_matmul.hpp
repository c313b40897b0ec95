// Dense products on the GPU through cuBLASLt, for the GPU training backend (matmuls, attention's
// batched products) and for tuning their algorithm like any kernel's config.
//
// The step's products are row-major; cuBLASLt is column-major. A row-major C (M x N) is, in the same
// memory, a column-major C^T (N x M), and C^T = op(B)^T op(A)^T: so cuBLASLt's first operand is our B
// and its second our A. column_major() is that mapping, a pure function tested on the CPU against a
// row-major reference (tests/jit/lt_matmul_test.cpp); LtMatmul runs it (compiled here, run only where
// a GPU is lent).
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "moejit/problem.hpp"  // DType

namespace moejit {

// C (M, N) = op(A) (M, K) . op(B) (K, N) + beta C, row-major, `batch` times at the given strides
// (elements). a_transposed: A is stored (K, M); b_transposed: B is stored (N, K). A leading
// dimension of 0 means densely packed.
struct RowMajorGemm {
  int64_t m = 0, n = 0, k = 0;
  bool a_transposed = false, b_transposed = false;
  int64_t lda = 0, ldb = 0, ldc = 0;
  int64_t batch = 1, stride_a = 0, stride_b = 0, stride_c = 0;
  float beta = 0.0f;  // 1: accumulate into C
};

// One column-major operand as cuBLASLt describes it: its stored rows, cols and leading dimension,
// and whether the product reads it transposed.
struct LtOperand {
  int64_t rows = 0, cols = 0, ld = 0, stride = 0;
  bool transposed = false;
};

// D (m, n) = op(X) (m, k) . op(Y) (k, n) + beta D, column-major: X is the row-major B, Y the A.
struct LtProblem {
  int64_t m = 0, n = 0, k = 0;
  LtOperand x, y;
  int64_t ldd = 0, stride_d = 0, batch = 1;
  float beta = 0.0f;
};

// Throws Error on a non-positive dimension or a leading dimension shorter than its row.
LtProblem column_major(const RowMajorGemm& gemm);

// A cuBLASLt algorithm, as a config: its opaque words, stable for one cuBLASLt version and device,
// kept as text ("lt" + 16 hex digits per word) in tuning decisions.
struct LtAlgo {
  std::array<uint64_t, 8> words{};
  size_t workspace_bytes = 0;
  std::string to_string() const;
  static LtAlgo parse(const std::string& text);  // throws Error naming the expected form
  bool operator==(const LtAlgo&) const = default;
};

// One product's cuBLASLt descriptors: a operands/out in `ab`/`out` dtypes, fp32 compute and scale.
class LtMatmul {
 public:
  // Throws UnavailableError where cuBLASLt cannot start (no GPU or driver), Error on bad shapes.
  LtMatmul(const RowMajorGemm& gemm, DType ab, DType out, size_t max_workspace_bytes);
  ~LtMatmul();
  LtMatmul(const LtMatmul&) = delete;
  LtMatmul& operator=(const LtMatmul&) = delete;

  const LtProblem& problem() const { return problem_; }
  // cuBLASLt's own ranking, best first: the tuner times these, the untuned path takes the first.
  std::vector<LtAlgo> candidates(int max_count) const;
  // C = A . B on `stream` (a CUstream); workspace holds at least algo.workspace_bytes.
  void run(const void* a, const void* b, void* c, const LtAlgo& algo, void* workspace, void* stream) const;

 private:
  struct Descriptors;
  LtProblem problem_;
  size_t max_workspace_;
  Descriptors* d_;
};

}  // namespace moejit
