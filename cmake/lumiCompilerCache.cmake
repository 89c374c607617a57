# ccache when present; the sloppiness settings let it cache translation units built with precompiled headers.
find_program(LUMI_CCACHE ccache)
if(LUMI_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  set(CMAKE_CXX_COMPILER_LAUNCHER
      ${CMAKE_COMMAND} -E env "CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime"
      ${LUMI_CCACHE})
  message(STATUS "lumi: compiling through ccache (${LUMI_CCACHE})")
endif()
