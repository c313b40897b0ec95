#include "lt_matmul.hpp"

#include <cublasLt.h>
#include <dlfcn.h>

#include <cstdio>

#include "moejit/error.hpp"

namespace moejit {

LtProblem column_major(const RowMajorGemm& g) {
  if (g.m < 1 || g.n < 1 || g.k < 1 || g.batch < 1)
    throw Error("cuBLASLt product needs positive sizes, got M " + std::to_string(g.m) + ", N " + std::to_string(g.n) +
                ", K " + std::to_string(g.k) + ", batch " + std::to_string(g.batch));
  // Stored row-major shapes: A (M, K) or (K, M); B (K, N) or (N, K); C (M, N).
  const int64_t a_row = g.a_transposed ? g.m : g.k, b_row = g.b_transposed ? g.k : g.n;
  const int64_t lda = g.lda ? g.lda : a_row, ldb = g.ldb ? g.ldb : b_row, ldc = g.ldc ? g.ldc : g.n;
  if (lda < a_row || ldb < b_row || ldc < g.n)
    throw Error("cuBLASLt product: a leading dimension is shorter than its row (lda " + std::to_string(lda) + " < " +
                std::to_string(a_row) + ", ldb " + std::to_string(ldb) + " < " + std::to_string(b_row) + " or ldc " +
                std::to_string(ldc) + " < " + std::to_string(g.n) + ")");
  LtProblem p;
  p.m = g.n, p.n = g.m, p.k = g.k;
  // A row-major (r, c) matrix with row stride ld is a column-major (c, r) one with the same ld.
  p.x = {b_row, g.b_transposed ? g.n : g.k, ldb, g.stride_b, g.b_transposed};
  p.y = {a_row, g.a_transposed ? g.k : g.m, lda, g.stride_a, g.a_transposed};
  p.ldd = ldc, p.stride_d = g.stride_c, p.batch = g.batch, p.beta = g.beta;
  return p;
}

std::string LtAlgo::to_string() const {
  std::string text = "lt";
  char word[17];
  for (uint64_t w : words) {
    std::snprintf(word, sizeof word, "%016llx", static_cast<unsigned long long>(w));
    text += word;
  }
  return text + "_ws" + std::to_string(workspace_bytes);
}

LtAlgo LtAlgo::parse(const std::string& text) {
  const auto bad = [&] {
    return Error("'" + text + "' is not a cuBLASLt algorithm: expected lt<128 hex digits>_ws<bytes>");
  };
  if (text.size() < 2 + 128 + 4 || text.compare(0, 2, "lt") != 0 || text.compare(130, 3, "_ws") != 0) throw bad();
  LtAlgo a;
  for (size_t i = 0; i < a.words.size(); ++i) {
    const std::string hex = text.substr(2 + 16 * i, 16);
    if (hex.find_first_not_of("0123456789abcdef") != std::string::npos) throw bad();
    a.words[i] = std::stoull(hex, nullptr, 16);
  }
  const std::string ws = text.substr(133);
  if (ws.empty() || ws.find_first_not_of("0123456789") != std::string::npos) throw bad();
  a.workspace_bytes = std::stoull(ws);
  return a;
}

namespace {

// cuBLASLt is loaded on first use with dlopen, like the driver: its 500 MB library would cost every
// process (each test, each CLI call) about half a second to map, and CPU-only runs never need it.
#define MOEJIT_CUBLASLT_FUNCTIONS(X)                                                                       \
  X(cublasLtCreate)                                                                                        \
  X(cublasLtGetStatusName) X(cublasLtGetStatusString) X(cublasLtMatrixLayoutCreate)                        \
      X(cublasLtMatrixLayoutSetAttribute) X(cublasLtMatrixLayoutDestroy) X(cublasLtMatmulDescCreate)       \
          X(cublasLtMatmulDescSetAttribute) X(cublasLtMatmulDescDestroy) X(cublasLtMatmulPreferenceCreate) \
              X(cublasLtMatmulPreferenceSetAttribute) X(cublasLtMatmulPreferenceDestroy)                   \
                  X(cublasLtMatmulAlgoGetHeuristic) X(cublasLtMatmul)

struct LtApi {
#define MOEJIT_LT_FIELD(name) decltype(&::name) name = nullptr;
  MOEJIT_CUBLASLT_FUNCTIONS(MOEJIT_LT_FIELD)
#undef MOEJIT_LT_FIELD
  cublasLtHandle_t handle = nullptr;
  std::string error;  // empty when usable
};

LtApi load_lt() {
  LtApi api;
  void* lib = nullptr;
  for (const char* path : {"libcublasLt.so." MOEJIT_CUBLASLT_SOVERSION, MOEJIT_CUBLASLT_PATH})
    if ((lib = dlopen(path, RTLD_NOW | RTLD_LOCAL))) break;
  if (!lib) {
    api.error = std::string("cannot load cuBLASLt (") + dlerror() + "): install the CUDA toolkit's libcublasLt";
    return api;
  }
#define MOEJIT_LT_LOAD(name)                                                        \
  api.name = reinterpret_cast<decltype(api.name)>(dlsym(lib, #name));               \
  if (!api.name) {                                                                  \
    api.error = std::string("the cuBLASLt library lacks ") + #name + ": update it"; \
    return api;                                                                     \
  }
  MOEJIT_CUBLASLT_FUNCTIONS(MOEJIT_LT_LOAD)
#undef MOEJIT_LT_LOAD
  const cublasStatus_t s = api.cublasLtCreate(&api.handle);
  if (s != CUBLAS_STATUS_SUCCESS)
    api.error = std::string("cuBLASLt cannot start: ") + api.cublasLtGetStatusName(s) +
                " (a GPU and its driver are needed; the host backend runs without one)";
  return api;
}

// One handle per process: cublasLtCreate is costly and the handle is thread-safe.
const LtApi& lt() {
  static const LtApi api = load_lt();
  if (!api.error.empty()) throw UnavailableError(api.error);
  return api;
}

void check_lt(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw Error(std::string("cuBLASLt ") + what + " failed: " + lt().cublasLtGetStatusName(s) + " (" +
                lt().cublasLtGetStatusString(s) + ")");
}

cudaDataType_t lt_type(DType t) {
  return t == DType::bf16 ? CUDA_R_16BF : CUDA_R_32F;
}

cublasLtMatrixLayout_t layout(cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld, int64_t batch,
                              int64_t stride) {
  cublasLtMatrixLayout_t l = nullptr;
  check_lt(lt().cublasLtMatrixLayoutCreate(&l, type, uint64_t(rows), uint64_t(cols), ld), "layout");
  if (batch > 1) {
    const int count = int(batch);
    check_lt(lt().cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count),
             "batch");
    check_lt(
        lt().cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride),
        "batch stride");
  }
  return l;
}

}  // namespace

struct LtMatmul::Descriptors {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t x = nullptr, y = nullptr, d = nullptr;
  ~Descriptors() {
    // Only ever created after lt() succeeded.
    if (x) lt().cublasLtMatrixLayoutDestroy(x);
    if (y) lt().cublasLtMatrixLayoutDestroy(y);
    if (d) lt().cublasLtMatrixLayoutDestroy(d);
    if (op) lt().cublasLtMatmulDescDestroy(op);
  }
};

LtMatmul::LtMatmul(const RowMajorGemm& gemm, DType ab, DType out, size_t max_workspace_bytes)
    : problem_(column_major(gemm)), max_workspace_(max_workspace_bytes), d_(new Descriptors) {
  try {
    const LtApi& api = lt();  // fails first, and clearly, without a GPU
    const LtProblem& p = problem_;
    check_lt(api.cublasLtMatmulDescCreate(&d_->op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "matmul descriptor");
    const cublasOperation_t tx = p.x.transposed ? CUBLAS_OP_T : CUBLAS_OP_N,
                            ty = p.y.transposed ? CUBLAS_OP_T : CUBLAS_OP_N;
    check_lt(api.cublasLtMatmulDescSetAttribute(d_->op, CUBLASLT_MATMUL_DESC_TRANSA, &tx, sizeof tx), "transa");
    check_lt(api.cublasLtMatmulDescSetAttribute(d_->op, CUBLASLT_MATMUL_DESC_TRANSB, &ty, sizeof ty), "transb");
    d_->x = layout(lt_type(ab), p.x.rows, p.x.cols, p.x.ld, p.batch, p.x.stride);
    d_->y = layout(lt_type(ab), p.y.rows, p.y.cols, p.y.ld, p.batch, p.y.stride);
    d_->d = layout(lt_type(out), p.m, p.n, p.ldd, p.batch, p.stride_d);
  } catch (...) {
    delete d_;
    throw;
  }
}

LtMatmul::~LtMatmul() {
  delete d_;
}

std::vector<LtAlgo> LtMatmul::candidates(int max_count) const {
  const LtApi& api = lt();
  cublasLtMatmulPreference_t pref = nullptr;
  check_lt(api.cublasLtMatmulPreferenceCreate(&pref), "preference");
  std::vector<cublasLtMatmulHeuristicResult_t> found(size_t(std::max(1, max_count)));
  int count = 0;
  cublasStatus_t s = api.cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                              &max_workspace_, sizeof max_workspace_);
  if (s == CUBLAS_STATUS_SUCCESS)
    s = api.cublasLtMatmulAlgoGetHeuristic(api.handle, d_->op, d_->x, d_->y, d_->d, d_->d, pref, int(found.size()),
                                           found.data(), &count);
  api.cublasLtMatmulPreferenceDestroy(pref);
  check_lt(s, "algorithm heuristic");
  std::vector<LtAlgo> out;
  for (int i = 0; i < count; ++i) {
    if (found[i].state != CUBLAS_STATUS_SUCCESS) continue;
    LtAlgo a;
    for (size_t w = 0; w < a.words.size(); ++w) a.words[w] = found[i].algo.data[w];
    a.workspace_bytes = found[i].workspaceSize;
    out.push_back(a);
  }
  if (out.empty())
    throw Error("cuBLASLt has no algorithm for this product (M " + std::to_string(problem_.n) + ", N " +
                std::to_string(problem_.m) + ", K " + std::to_string(problem_.k) + ") within " +
                std::to_string(max_workspace_) + " bytes of workspace");
  return out;
}

void LtMatmul::run(const void* a, const void* b, void* c, const LtAlgo& algo, void* workspace, void* stream) const {
  cublasLtMatmulAlgo_t chosen{};
  for (size_t w = 0; w < algo.words.size(); ++w) chosen.data[w] = algo.words[w];
  const float alpha = 1.0f, beta = problem_.beta;
  const LtApi& api = lt();
  check_lt(api.cublasLtMatmul(api.handle, d_->op, &alpha, b, d_->x, a, d_->y, &beta, c, d_->d, c, d_->d, &chosen,
                              workspace, algo.workspace_bytes, static_cast<cudaStream_t>(stream)),
           "matmul");
}

}  // namespace moejit
