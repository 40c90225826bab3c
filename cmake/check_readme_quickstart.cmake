# check_readme_quickstart.cmake — CTest case readme_quickstart_in_sync.
#   cmake -DREADME=README.md -DEXAMPLE=examples/quickstart.cpp -P check_readme_quickstart.cmake
# The first ```cpp fenced block after the line
#   <!-- quickstart: examples/quickstart.cpp -->
# in README.md must be byte-identical to examples/quickstart.cpp, so that the
# code shown to readers is the code the test build compiles.
cmake_minimum_required(VERSION 3.25)

set(marker "<!-- quickstart: examples/quickstart.cpp -->")
foreach(v README EXAMPLE)
  if(NOT DEFINED ${v} OR NOT EXISTS "${${v}}")
    message(FATAL_ERROR "readme_quickstart_in_sync: -D${v}=<existing file> is required (got '${${v}}')")
  endif()
endforeach()

file(READ "${README}" readme)
file(READ "${EXAMPLE}" example)

string(FIND "${readme}" "${marker}" pos)
if(pos EQUAL -1)
  message(FATAL_ERROR "readme_quickstart_in_sync: ${README} has no line '${marker}'")
endif()
string(SUBSTRING "${readme}" ${pos} -1 rest)

set(open "```cpp\n")
string(FIND "${rest}" "${open}" open_pos)
if(open_pos EQUAL -1)
  message(FATAL_ERROR "readme_quickstart_in_sync: no ```cpp block after '${marker}' in ${README}")
endif()
string(LENGTH "${open}" open_len)
math(EXPR body_start "${open_pos} + ${open_len}")
string(SUBSTRING "${rest}" ${body_start} -1 rest)

# The closing fence is a line that starts with ``` (the block may be empty).
if(rest MATCHES "^```")
  set(block "")
else()
  string(FIND "${rest}" "\n```" close_pos)
  if(close_pos EQUAL -1)
    message(FATAL_ERROR "readme_quickstart_in_sync: the ```cpp block after '${marker}' is never closed")
  endif()
  math(EXPR block_len "${close_pos} + 1")  # keep the final newline of the code
  string(SUBSTRING "${rest}" 0 ${block_len} block)
endif()

if(block STREQUAL example)
  string(LENGTH "${example}" n)
  message(STATUS "readme_quickstart_in_sync: README block == ${EXAMPLE} (${n} bytes)")
  return()
endif()

# Report the first differing line to make the fix obvious. (No CMake lists
# here: code contains ';' and unbalanced '[' that lists would mangle.)
macro(_pop_line text out)
  string(FIND "${${text}}" "\n" _nl)
  if(_nl EQUAL -1)
    set(${out} "${${text}}")
    set(${text} "")
  else()
    string(SUBSTRING "${${text}}" 0 ${_nl} ${out})
    math(EXPR _next "${_nl} + 1")
    string(SUBSTRING "${${text}}" ${_next} -1 ${text})
  endif()
endmacro()
set(b "${block}")
set(e "${example}")
set(detail "")
set(line 0)
while(NOT b STREQUAL "" OR NOT e STREQUAL "")
  math(EXPR line "${line} + 1")
  set(lb "<end of block>")
  set(le "<end of file>")
  if(NOT b STREQUAL "")
    _pop_line(b lb)
  endif()
  if(NOT e STREQUAL "")
    _pop_line(e le)
  endif()
  if(NOT lb STREQUAL le)
    set(detail "first difference at line ${line} of the code:\n  README.md:      ${lb}\n  quickstart.cpp: ${le}")
    break()
  endif()
endwhile()
if(detail STREQUAL "")
  set(detail "the texts differ only in their final newline or in empty lines")
endif()
message(FATAL_ERROR "readme_quickstart_in_sync: the ```cpp block after '${marker}' in ${README} "
                    "is not byte-identical to ${EXAMPLE}.\n${detail}\n"
                    "Copy examples/quickstart.cpp into the README block (or the other way round).")
