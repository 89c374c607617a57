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

# Parquet sources (optional): Apache Arrow's C++ Parquet reader, from PyPI's pyarrow wheel, which ships Arrow's
# C++ headers and libraries for building against it (Debian 12 has no Arrow package). LUMI_PARQUET: AUTO uses it
# where found, ON requires it, OFF leaves it out; LUMI_PARQUET_PYTHON: the interpreter whose pyarrow to use
# (default: LibTorch's, LUMI_TORCH_PYTHON). Without it lumi builds and a Parquet source is a clear error.
set(LUMI_PARQUET "AUTO" CACHE STRING "Parquet sources through pyarrow's Arrow C++ libraries: AUTO, ON or OFF")
set(LUMI_PARQUET_PYTHON "" CACHE FILEPATH "Python whose pyarrow provides Arrow's C++ libraries")
if(NOT TARGET lumi::parquet)
  add_library(lumi_parquet INTERFACE IMPORTED GLOBAL)
  add_library(lumi::parquet ALIAS lumi_parquet)
  set(LUMI_PARQUET_FOUND OFF)
  set(lumi_pyarrow_python "${LUMI_PARQUET_PYTHON}")
  if(NOT lumi_pyarrow_python)
    set(lumi_pyarrow_python "${LUMI_TORCH_PYTHON}")
  endif()
  if(NOT LUMI_PARQUET STREQUAL "OFF" AND lumi_pyarrow_python)
    execute_process(COMMAND "${lumi_pyarrow_python}" -c
      "import pyarrow as pa; print(pa.get_include()); print(pa.get_library_dirs()[0]); print(pa.__version__)"
      OUTPUT_VARIABLE lumi_pyarrow OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE lumi_rc ERROR_QUIET)
    if(lumi_rc EQUAL 0)
      string(REPLACE "\n" ";" lumi_pyarrow "${lumi_pyarrow}")
      list(GET lumi_pyarrow 0 lumi_arrow_include)
      list(GET lumi_pyarrow 1 lumi_arrow_libdir)
      list(GET lumi_pyarrow 2 lumi_arrow_version)
      # The wheel has only versioned names (libarrow.so.2600), which the linker takes by full path.
      file(GLOB lumi_arrow_lib "${lumi_arrow_libdir}/libarrow.so.[0-9]*")
      file(GLOB lumi_parquet_lib "${lumi_arrow_libdir}/libparquet.so.[0-9]*")
      if(lumi_arrow_lib AND lumi_parquet_lib AND EXISTS "${lumi_arrow_include}/parquet/arrow/reader.h")
        list(SORT lumi_arrow_lib)
        list(SORT lumi_parquet_lib)
        list(GET lumi_arrow_lib 0 lumi_arrow_lib)
        list(GET lumi_parquet_lib 0 lumi_parquet_lib)
        target_include_directories(lumi_parquet SYSTEM INTERFACE "${lumi_arrow_include}")
        target_link_libraries(lumi_parquet INTERFACE "${lumi_parquet_lib}" "${lumi_arrow_lib}")
        target_compile_definitions(lumi_parquet INTERFACE LUMI_HAS_PARQUET=1)
        set(LUMI_PARQUET_FOUND ON)
        message(STATUS "lumi: Parquet sources through Arrow ${lumi_arrow_version} (pyarrow of ${lumi_pyarrow_python})")
      endif()
    endif()
  endif()
  if(NOT LUMI_PARQUET_FOUND)
    set(lumi_why "no pyarrow with Arrow's C++ headers and libraries in ${lumi_pyarrow_python}")
    if(NOT lumi_pyarrow_python)
      set(lumi_why "no LUMI_PARQUET_PYTHON or LUMI_TORCH_PYTHON names a Python with pyarrow")
    endif()
    if(LUMI_PARQUET STREQUAL "ON")
      message(FATAL_ERROR "lumi: LUMI_PARQUET=ON but ${lumi_why} (scripts/setup.sh --torch2 installs pyarrow)")
    elseif(LUMI_PARQUET STREQUAL "AUTO")
      message(STATUS "lumi: without Parquet sources: ${lumi_why}")
    endif()
  endif()
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
