# Third-party dependencies. Debian packages where installed (scripts/setup.sh), else the copies
# scripts/stage-device-deps.sh staged into MOEJIT_DEPS_DIR (the GPU machine has no Debian packages).

# CUDA toolkit: NVRTC is linked; the driver (libcuda) is loaded at run time with dlopen.
if(DEFINED ENV{CUDA_HOME})
  set(_cuda_hint "$ENV{CUDA_HOME}")
else()
  set(_cuda_hint "/usr/local/cuda")
endif()
set(CUDAToolkit_ROOT "${_cuda_hint}" CACHE PATH "CUDA toolkit root")
find_package(CUDAToolkit REQUIRED)
if(NOT TARGET CUDA::nvrtc)
  message(FATAL_ERROR "NVRTC not found in the CUDA toolkit at ${CUDAToolkit_ROOT}: set CUDA_HOME")
endif()
# CCCL headers (cuda/barrier, cuda/ptx, cub) for NVRTC include paths.
find_path(MOEJIT_CCCL_INCLUDE_DIR cuda/barrier
          HINTS "${CUDAToolkit_INCLUDE_DIRS}/cccl" ${CUDAToolkit_INCLUDE_DIRS} NO_DEFAULT_PATH)

# nlohmann_json. Staged headers come first, as for CLI11 below: on the GPU machine a newer installed
# copy would otherwise mix with the staged one (CLI11's include directory holds both), and two
# json ABI namespaces do not link.
if(NOT EXISTS "${MOEJIT_DEPS_DIR}/include/nlohmann/json.hpp")
  find_package(nlohmann_json 3.10 QUIET)
endif()
if(NOT nlohmann_json_FOUND)
  if(NOT EXISTS "${MOEJIT_DEPS_DIR}/include/nlohmann/json.hpp")
    message(FATAL_ERROR "nlohmann_json not found: run scripts/setup.sh (Debian) or scripts/stage-device-deps.sh")
  endif()
  add_library(nlohmann_json INTERFACE)
  add_library(nlohmann_json::nlohmann_json ALIAS nlohmann_json)
  target_include_directories(nlohmann_json SYSTEM INTERFACE "${MOEJIT_DEPS_DIR}/include")
endif()

# CLI11 (header only). Staged headers come first: another CLI11 on the GPU machine (newer, with other
# name rules) must not replace the version CI builds and tests with.
if(NOT EXISTS "${MOEJIT_DEPS_DIR}/include/CLI/CLI.hpp")
  find_package(CLI11 CONFIG QUIET)
endif()
if(NOT CLI11_FOUND)
  find_path(_cli11_dir CLI/CLI.hpp HINTS "${MOEJIT_DEPS_DIR}/include")
  if(NOT _cli11_dir)
    message(FATAL_ERROR "CLI11 not found: run scripts/setup.sh (Debian) or scripts/stage-device-deps.sh")
  endif()
  add_library(CLI11 INTERFACE)
  add_library(CLI11::CLI11 ALIAS CLI11)
  target_include_directories(CLI11 SYSTEM INTERFACE "${_cli11_dir}")
endif()

# xxHash, used header-only (XXH_INLINE_ALL) so the GPU machine needs just the header.
find_path(MOEJIT_XXHASH_INCLUDE_DIR xxhash.h HINTS "${MOEJIT_DEPS_DIR}/include")
if(NOT MOEJIT_XXHASH_INCLUDE_DIR)
  message(FATAL_ERROR "xxhash.h not found: run scripts/setup.sh (Debian libxxhash-dev) or scripts/stage-device-deps.sh")
endif()
add_library(moejit_xxhash INTERFACE)
target_include_directories(moejit_xxhash SYSTEM INTERFACE "${MOEJIT_XXHASH_INCLUDE_DIR}")

find_package(Threads REQUIRED)

# LLVM/Clang 16 for the host backend.
# Not even looked for when explicitly OFF (a half-installed LLVM must not break a GPU-only build).
if(NOT DEFINED MOEJIT_WITH_LLVM OR MOEJIT_WITH_LLVM)
  find_package(LLVM 16 CONFIG QUIET HINTS /usr/lib/llvm-16/lib/cmake/llvm)
  if(LLVM_FOUND)
    find_package(Clang CONFIG QUIET HINTS /usr/lib/llvm-16/lib/cmake/clang)
  endif()
endif()
if(LLVM_FOUND AND Clang_FOUND)
  set(_llvm_default ON)
else()
  set(_llvm_default OFF)
endif()
option(MOEJIT_WITH_LLVM "Build the host backend (Clang/LLVM 16 ORC JIT)" ${_llvm_default})
if(MOEJIT_WITH_LLVM AND NOT (LLVM_FOUND AND Clang_FOUND))
  message(FATAL_ERROR "MOEJIT_WITH_LLVM=ON but LLVM/Clang 16 dev files were not found: run scripts/setup.sh")
endif()
message(STATUS "moejit: host backend (LLVM) ${MOEJIT_WITH_LLVM}")

# MPI (Open MPI from Debian): `mpirun -np N moejit train` (docs/distributed.md). On by default where
# found; a build without it trains in one process, and a single process never needs mpirun.
find_package(MPI QUIET COMPONENTS C)
option(MOEJIT_WITH_MPI "Build multi-process training over MPI" ${MPI_C_FOUND})
if(MOEJIT_WITH_MPI AND NOT MPI_C_FOUND)
  message(FATAL_ERROR "MOEJIT_WITH_MPI=ON but MPI was not found: run scripts/setup.sh (libopenmpi-dev)")
endif()
message(STATUS "moejit: MPI ${MOEJIT_WITH_MPI}")
# NCCL (runtime/nccl_comm.hpp): loaded at run time with dlopen, so only its header is needed to build;
# on wherever nccl.h is found (the CUDA toolkit's include directory, or staged into .deps/include for
# the GPU machine by scripts/stage-device-deps.sh).
find_path(MOEJIT_NCCL_INCLUDE_DIR nccl.h HINTS ${MOEJIT_DEPS_DIR}/include ${CUDAToolkit_INCLUDE_DIRS})
set(MOEJIT_NCCL_HEADER_FOUND OFF)
if(MOEJIT_NCCL_INCLUDE_DIR)
  set(MOEJIT_NCCL_HEADER_FOUND ON)
endif()
option(MOEJIT_WITH_NCCL "Build multi-GPU gradient sums over NCCL (dlopen'ed at run time)" ${MOEJIT_NCCL_HEADER_FOUND})
if(MOEJIT_WITH_NCCL AND NOT MOEJIT_NCCL_INCLUDE_DIR)
  message(FATAL_ERROR "MOEJIT_WITH_NCCL=ON but nccl.h was not found: install NCCL's headers (libnccl-dev) or stage "
                      "them into .deps/include")
endif()
message(STATUS "moejit: NCCL ${MOEJIT_WITH_NCCL}")

# GoogleTest
if(MOEJIT_BUILD_TESTS)
  find_package(GTest QUIET)
  if(NOT GTest_FOUND)
    if(EXISTS "${MOEJIT_DEPS_DIR}/googletest/CMakeLists.txt")
      set(INSTALL_GTEST OFF CACHE BOOL "" FORCE)
      add_subdirectory("${MOEJIT_DEPS_DIR}/googletest" "${CMAKE_BINARY_DIR}/_deps/googletest" EXCLUDE_FROM_ALL)
      add_library(GTest::gtest ALIAS gtest)
      add_library(GTest::gtest_main ALIAS gtest_main)
    elseif(EXISTS /usr/src/googletest/CMakeLists.txt)
      add_subdirectory(/usr/src/googletest "${CMAKE_BINARY_DIR}/_deps/googletest" EXCLUDE_FROM_ALL)
      add_library(GTest::gtest ALIAS gtest)
      add_library(GTest::gtest_main ALIAS gtest_main)
    else()
      message(FATAL_ERROR "GoogleTest not found: run scripts/setup.sh or scripts/stage-device-deps.sh")
    endif()
  endif()
  include(GoogleTest)
endif()
