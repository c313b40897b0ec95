# `cmake --install build --prefix P` lays out an installed moejit:
#   P/lib/libmoejit.so.X.Y.Z          the library (C++ and C API), SONAME libmoejit.so.X.Y
#   P/include/moejit/                 public headers, incl. abi/ (also on every JIT compile's path)
#   P/bin/moejit                      the CLI
#   P/share/moejit/templates, models, bundles  read at run time, found relative to the library or the CLI
#                                     (base/install_dirs.hpp): no environment variable needed
#   P/lib/cmake/moejit/               find_package(moejit CONFIG) -> moejit::moejit
#   P/lib/pkgconfig/moejit.pc         pkg-config --cflags --libs moejit
include(CMakePackageConfigHelpers)
set(MOEJIT_CMAKE_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/moejit")

# Installed binaries keep the paths of the libraries they link from outside our tree (LLVM 16 and
# NVRTC live in directories ld.so does not search by default).
set_target_properties(moejit_api moejit PROPERTIES INSTALL_RPATH_USE_LINK_PATH ON)
install(TARGETS moejit_api EXPORT moejitTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} NAMELINK_COMPONENT Development)
install(TARGETS moejit RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# Public headers: jit's, base's (error, log, the kernel ABI), the lookup rung, the facade.
foreach(dir include base/include tuning_cache/include api/include)
  install(DIRECTORY "${CMAKE_SOURCE_DIR}/${dir}/moejit" DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
    FILES_MATCHING PATTERN "*.h" PATTERN "*.hpp")
endforeach()

# What the JIT renders at run time: kernel sources only (the specs' .cpp/.hpp are compiled in).
# (An empty variable here would install "/": hence the check.)
foreach(dir IN ITEMS "${MOEJIT_SOURCE_TEMPLATE_DIR}" "${MOEJIT_SOURCE_MODELS_DIR}")
  if(NOT dir OR NOT IS_DIRECTORY "${dir}")
    message(FATAL_ERROR "MoejitInstall: run-time data directory '${dir}' does not exist")
  endif()
endforeach()
install(DIRECTORY "${MOEJIT_SOURCE_TEMPLATE_DIR}/" DESTINATION "${CMAKE_INSTALL_DATADIR}/moejit/templates"
  FILES_MATCHING PATTERN "*.h" PATTERN "*.cuh")
install(DIRECTORY "${MOEJIT_SOURCE_MODELS_DIR}/" DESTINATION "${CMAKE_INSTALL_DATADIR}/moejit/models"
  FILES_MATCHING PATTERN "*.json")
# The shipped tuning bundles (the lookup's `shipped` rung: tuning_cache/shipped.hpp).
install(DIRECTORY "${CMAKE_SOURCE_DIR}/tuning_cache/bundles/" DESTINATION "${CMAKE_INSTALL_DATADIR}/moejit/bundles"
  FILES_MATCHING PATTERN "*.json")

install(EXPORT moejitTargets NAMESPACE moejit:: DESTINATION "${MOEJIT_CMAKE_DIR}")
configure_package_config_file("${CMAKE_SOURCE_DIR}/cmake/templates/moejitConfig.cmake.in"
  "${CMAKE_BINARY_DIR}/moejitConfig.cmake" INSTALL_DESTINATION "${MOEJIT_CMAKE_DIR}")
write_basic_package_version_file("${CMAKE_BINARY_DIR}/moejitConfigVersion.cmake"
  COMPATIBILITY SameMinorVersion)
install(FILES "${CMAKE_BINARY_DIR}/moejitConfig.cmake" "${CMAKE_BINARY_DIR}/moejitConfigVersion.cmake"
  DESTINATION "${MOEJIT_CMAKE_DIR}")

# pkg-config: paths relative to the .pc file, so a relocated prefix works too.
file(RELATIVE_PATH MOEJIT_PC_TO_PREFIX "${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig" "${CMAKE_INSTALL_PREFIX}")
string(REGEX REPLACE "/$" "" MOEJIT_PC_TO_PREFIX "${MOEJIT_PC_TO_PREFIX}")
configure_file("${CMAKE_SOURCE_DIR}/cmake/templates/moejit.pc.in" "${CMAKE_BINARY_DIR}/moejit.pc" @ONLY)
install(FILES "${CMAKE_BINARY_DIR}/moejit.pc" DESTINATION "${CMAKE_INSTALL_LIBDIR}/pkgconfig")

# One version: the project's (SONAME, package version, .pc) is the one the code reports.
file(STRINGS "${CMAKE_SOURCE_DIR}/include/moejit/version.hpp" _moejit_version_line REGEX "kVersion = ")
if(NOT _moejit_version_line MATCHES "\"${PROJECT_VERSION}\"")
  message(FATAL_ERROR "include/moejit/version.hpp (${_moejit_version_line}) differs from project(VERSION "
                      "${PROJECT_VERSION}) in CMakeLists.txt: change both")
endif()
