# engine/ may include the C++ standard library only (docs/ARCHITECTURE.md: the engine is pure).
#
# Usage: cmake -DENGINE_DIR=<path to engine/> -P engine_purity.cmake
#
# Scans every source file under ENGINE_DIR for #include lines and fails listing each
# include that is neither a standard library header (the explicit allowlist below) nor a
# quoted include that resolves to a file inside ENGINE_DIR.

cmake_minimum_required(VERSION 3.25)

if(NOT DEFINED ENGINE_DIR OR ENGINE_DIR STREQUAL "")
  message(FATAL_ERROR "engine_purity: pass -DENGINE_DIR=<path to engine/>")
endif()
if(NOT IS_DIRECTORY "${ENGINE_DIR}")
  message(FATAL_ERROR "engine_purity: ENGINE_DIR '${ENGINE_DIR}' is not a directory")
endif()
file(REAL_PATH "${ENGINE_DIR}" engine_root)

# C++20 standard library headers, the <cxxx> C library headers, and the C headers that
# the C++ standard still lists (<stdint.h>, ...). Nothing else: no POSIX, no Boost.
set(standard_headers
  algorithm any array atomic barrier bit bitset charconv chrono codecvt compare complex
  concepts condition_variable coroutine deque exception execution expected filesystem
  format forward_list fstream functional future initializer_list iomanip ios iosfwd
  iostream istream iterator latch limits list locale map memory memory_resource mutex
  new numbers numeric optional ostream queue random ranges ratio regex scoped_allocator
  semaphore set shared_mutex source_location span sstream stack stdexcept stop_token
  streambuf string string_view strstream syncstream system_error thread tuple type_traits
  typeindex typeinfo unordered_map unordered_set utility valarray variant vector version
  cassert cctype cerrno cfenv cfloat cinttypes climits clocale cmath csetjmp csignal
  cstdarg cstddef cstdint cstdio cstdlib cstring ctime cuchar cwchar cwctype
  assert.h ctype.h errno.h fenv.h float.h inttypes.h limits.h locale.h math.h setjmp.h
  signal.h stdarg.h stddef.h stdint.h stdio.h stdlib.h string.h time.h uchar.h wchar.h
  wctype.h)

file(GLOB_RECURSE sources LIST_DIRECTORIES false
  "${engine_root}/*.hpp" "${engine_root}/*.cpp" "${engine_root}/*.h"
  "${engine_root}/*.hh" "${engine_root}/*.cc" "${engine_root}/*.cxx"
  "${engine_root}/*.ipp" "${engine_root}/*.inl" "${engine_root}/*.tpp")
list(SORT sources)
if(NOT sources)
  message(FATAL_ERROR "engine_purity: no source files under '${engine_root}' (wrong ENGINE_DIR?)")
endif()

set(violations "")
set(checked 0)
foreach(source IN LISTS sources)
  file(RELATIVE_PATH source_name "${engine_root}" "${source}")
  get_filename_component(source_dir "${source}" DIRECTORY)
  # Lines whose first token is the include directive (also "#  include").
  file(STRINGS "${source}" include_lines REGEX "^[ \t]*#[ \t]*include")
  foreach(line IN LISTS include_lines)
    math(EXPR checked "${checked} + 1")
    string(STRIP "${line}" line)
    if(line MATCHES "^#[ \t]*include[ \t]*<([^>]+)>")
      set(header "${CMAKE_MATCH_1}")
      string(STRIP "${header}" header)
      if(NOT header IN_LIST standard_headers)
        list(APPEND violations "${source_name}: <${header}> is not a standard library header")
      endif()
    elseif(line MATCHES "^#[ \t]*include[ \t]*\"([^\"]+)\"")
      set(header "${CMAKE_MATCH_1}")
      # The include path is the project root, so "engine/x.hpp" is the usual spelling;
      # also accept paths relative to the including file and to ENGINE_DIR itself.
      get_filename_component(engine_parent "${engine_root}" DIRECTORY)
      get_filename_component(engine_name "${engine_root}" NAME)
      set(candidates "${source_dir}/${header}" "${engine_root}/${header}")
      if(header MATCHES "^${engine_name}/(.+)$")
        list(APPEND candidates "${engine_root}/${CMAKE_MATCH_1}")
      endif()
      set(resolved_inside FALSE)
      foreach(candidate IN LISTS candidates)
        if(EXISTS "${candidate}" AND NOT IS_DIRECTORY "${candidate}")
          file(REAL_PATH "${candidate}" real_candidate)
          string(FIND "${real_candidate}" "${engine_root}/" position)
          if(position EQUAL 0)
            set(resolved_inside TRUE)
            break()
          endif()
        endif()
      endforeach()
      if(NOT resolved_inside)
        list(APPEND violations "${source_name}: \"${header}\" does not resolve to a file inside ${engine_root}")
      endif()
    else()
      # #include MACRO or anything else we cannot verify is refused.
      list(APPEND violations "${source_name}: unrecognised include line '${line}'")
    endif()
  endforeach()
endforeach()

list(LENGTH sources source_count)
if(violations)
  list(JOIN violations "\n  " report)
  message(FATAL_ERROR "engine/ must include only the C++ standard library and its own files; "
                      "found:\n  ${report}")
endif()
message(STATUS "engine_purity: ${source_count} files, ${checked} includes, all standard or local")
