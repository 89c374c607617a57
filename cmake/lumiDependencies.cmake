# Finds what lumi::lumi links against. Used by lumi's own build and by the installed lumiConfig.cmake.
include(CMakeFindDependencyMacro)

if(NOT TARGET torch)
  find_dependency(Torch)
endif()
if(DEFINED Torch_VERSION AND Torch_VERSION VERSION_LESS 1.13)
  message(FATAL_ERROR
    "lumi needs LibTorch 1.13 or newer; found ${Torch_VERSION} (${Torch_DIR}). "
    "Install Debian's libtorch-dev (scripts/setup.sh) or PyPI's torch 2.x (scripts/setup.sh --torch2).")
endif()

find_dependency(Boost 1.81 CONFIG COMPONENTS json)
find_dependency(range-v3 CONFIG)
find_dependency(ZLIB)

# utf8proc (NFKC) and zstd through their headers and libraries: neither ships a CMake package everywhere.
foreach(lumi_lib IN ITEMS utf8proc zstd)
  if(NOT TARGET lumi::${lumi_lib})
    find_path(LUMI_${lumi_lib}_INCLUDE ${lumi_lib}.h)
    find_library(LUMI_${lumi_lib}_LIB ${lumi_lib})
    if(NOT LUMI_${lumi_lib}_INCLUDE OR NOT LUMI_${lumi_lib}_LIB)
      message(FATAL_ERROR "lumi needs ${lumi_lib}: install libutf8proc-dev and libzstd-dev (scripts/setup.sh)")
    endif()
    add_library(lumi_${lumi_lib} INTERFACE IMPORTED GLOBAL)
    target_include_directories(lumi_${lumi_lib} INTERFACE "${LUMI_${lumi_lib}_INCLUDE}")
    target_link_libraries(lumi_${lumi_lib} INTERFACE "${LUMI_${lumi_lib}_LIB}")
    add_library(lumi::${lumi_lib} ALIAS lumi_${lumi_lib})
  endif()
endforeach()

# SentencePiece as built by scripts/setup.sh against the system protobuf (Debian's binary package cannot share
# a process with Debian's LibTorch: see scripts/setup.sh).
if(NOT TARGET lumi::sentencepiece)
  set(LUMI_SENTENCEPIECE_ROOT "$ENV{LUMI_SENTENCEPIECE_ROOT}" CACHE PATH "Where SentencePiece is installed")
  if(NOT LUMI_SENTENCEPIECE_ROOT)
    set(LUMI_SENTENCEPIECE_ROOT /opt/lumi/sentencepiece CACHE PATH "Where SentencePiece is installed" FORCE)
  endif()
  find_path(LUMI_SPM_INCLUDE sentencepiece_processor.h PATHS "${LUMI_SENTENCEPIECE_ROOT}/include" NO_DEFAULT_PATH)
  find_library(LUMI_SPM_LIB libsentencepiece.a PATHS "${LUMI_SENTENCEPIECE_ROOT}/lib" NO_DEFAULT_PATH)
  find_library(LUMI_SPM_TRAIN_LIB libsentencepiece_train.a PATHS "${LUMI_SENTENCEPIECE_ROOT}/lib" NO_DEFAULT_PATH)
  find_library(LUMI_PROTOBUF_LITE protobuf-lite)
  if(NOT LUMI_SPM_INCLUDE OR NOT LUMI_SPM_LIB OR NOT LUMI_SPM_TRAIN_LIB OR NOT LUMI_PROTOBUF_LITE)
    message(FATAL_ERROR "lumi needs SentencePiece built against the system protobuf in "
      "LUMI_SENTENCEPIECE_ROOT=${LUMI_SENTENCEPIECE_ROOT}: run scripts/setup.sh")
  endif()
  find_package(Threads REQUIRED)
  add_library(lumi_sentencepiece INTERFACE IMPORTED GLOBAL)
  target_include_directories(lumi_sentencepiece INTERFACE "${LUMI_SPM_INCLUDE}")
  target_link_libraries(lumi_sentencepiece INTERFACE
    "${LUMI_SPM_TRAIN_LIB}" "${LUMI_SPM_LIB}" "${LUMI_PROTOBUF_LITE}" Threads::Threads)
  add_library(lumi::sentencepiece ALIAS lumi_sentencepiece)
endif()

# The allocator the stage binaries and benchmarks link (lumi::allocator): tcmalloc keeps freed memory for reuse,
# where glibc returns every large block to the kernel and faults it back in zeroed at the next step (the tiny
# training step spent 14% of its time in the kernel on 2 cores, 6% with tcmalloc: docs/performance.md).
# -DLUMI_ALLOCATOR=system keeps glibc's (sanitizer builds must).
set(LUMI_ALLOCATOR "tcmalloc" CACHE STRING "Allocator of the stage binaries and benchmarks: tcmalloc or system")
if(NOT TARGET lumi::allocator)
  add_library(lumi_allocator INTERFACE IMPORTED GLOBAL)
  add_library(lumi::allocator ALIAS lumi_allocator)
  if(LUMI_ALLOCATOR STREQUAL "tcmalloc" AND NOT LUMI_SANITIZE)  # ASan brings its own allocator
    find_library(LUMI_TCMALLOC_LIB NAMES tcmalloc_minimal libtcmalloc_minimal.so.4)
    if(LUMI_TCMALLOC_LIB)
      target_link_libraries(lumi_allocator INTERFACE "${LUMI_TCMALLOC_LIB}")
    else()
      message(STATUS "lumi: tcmalloc not found (Debian: libgoogle-perftools-dev): glibc's allocator, slower")
    endif()
  endif()
endif()

# Imported targets are directory-scoped: make them visible to a parent project that added lumi with
# add_subdirectory or FetchContent, since lumi::lumi names them in its interface.
if(DEFINED LUMI_TOP_LEVEL AND NOT LUMI_TOP_LEVEL)
  get_property(lumi_imported DIRECTORY PROPERTY IMPORTED_TARGETS)
  foreach(t IN LISTS lumi_imported)
    get_target_property(lumi_is_global ${t} IMPORTED_GLOBAL)
    if(NOT lumi_is_global)
      set_property(TARGET ${t} PROPERTY IMPORTED_GLOBAL TRUE)
    endif()
  endforeach()
endif()
