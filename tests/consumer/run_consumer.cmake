# run_consumer.cmake — CTest case consumer_find_package.
#   cmake -DPOLYMATH_BUILD_DIR=<build> -DPOLYMATH_SOURCE_DIR=<src>
#         [-DCONSUMER_GENERATOR=Ninja] [-DCONSUMER_CXX_COMPILER=g++] [-DCONSUMER_BUILD_TYPE=Release]
#         -P run_consumer.cmake
# (a) installs the polymath build tree into <build>/_consumer_install,
# (b) configures tests/consumer against that prefix in a fresh build folder,
# (c) builds it, (d) runs the executable and expects exit code 0.
cmake_minimum_required(VERSION 3.25)

foreach(v POLYMATH_BUILD_DIR POLYMATH_SOURCE_DIR)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "run_consumer.cmake: -D${v}=... is required")
  endif()
endforeach()

set(prefix "${POLYMATH_BUILD_DIR}/_consumer_install")
set(cbuild "${POLYMATH_BUILD_DIR}/_consumer_build")
file(REMOVE_RECURSE "${prefix}" "${cbuild}")

function(step name)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer_find_package: step '${name}' failed (exit ${rc})\n"
                        "command: ${ARGN}\n--- stdout ---\n${out}\n--- stderr ---\n${err}")
  endif()
  message(STATUS "consumer_find_package: ${name}: ok")
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

# (a) install
step("install" ${CMAKE_COMMAND} --install "${POLYMATH_BUILD_DIR}" --prefix "${prefix}")
if(NOT EXISTS "${prefix}/include/polymath/core/error.hpp")
  message(FATAL_ERROR "consumer_find_package: headers missing from ${prefix}/include")
endif()
file(GLOB_RECURSE _cfg "${prefix}/*/polymathConfig.cmake")
if(NOT _cfg)
  message(FATAL_ERROR "consumer_find_package: no polymathConfig.cmake under ${prefix}")
endif()

# (b) configure, only the install prefix is known to the consumer
set(cfg_args -S "${POLYMATH_SOURCE_DIR}/tests/consumer" -B "${cbuild}"
             "-DCMAKE_PREFIX_PATH=${prefix}")
if(CONSUMER_GENERATOR)
  list(APPEND cfg_args -G "${CONSUMER_GENERATOR}")
endif()
if(CONSUMER_CXX_COMPILER)
  list(APPEND cfg_args "-DCMAKE_CXX_COMPILER=${CONSUMER_CXX_COMPILER}")
endif()
if(CONSUMER_BUILD_TYPE)
  list(APPEND cfg_args "-DCMAKE_BUILD_TYPE=${CONSUMER_BUILD_TYPE}")
endif()
step("configure" ${CMAKE_COMMAND} ${cfg_args})

# (c) build
step("build" ${CMAKE_COMMAND} --build "${cbuild}")

# (d) run
find_program(consumer_exe polymath_consumer PATHS "${cbuild}" "${cbuild}/Release" "${cbuild}/Debug"
             NO_DEFAULT_PATH NO_CACHE)
if(NOT consumer_exe)
  message(FATAL_ERROR "consumer_find_package: built executable polymath_consumer not found in ${cbuild}")
endif()
step("run" "${consumer_exe}")
message(STATUS "consumer output: ${step_output}")
