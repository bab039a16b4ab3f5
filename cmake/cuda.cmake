# CUDA backend switch. AUTO builds it when nvcc exists (CUDA is not a Debian package: a fresh
# machine without it builds CPU-only); ON requires it; OFF never builds it. The backend's kernels
# live in src/kernels/cuda/*.cu; the C files there (the GPU weight layout) are plain C and always
# part of libbitnet, so their tests run on every machine. The backend itself
# (src/backend/cuda/backend_cuda.c, in the top-level glob) is C built either way: without CUDA its
# creation reports that the build has none.
#
# Three .cu files, each kernel instantiated at most twice (1 token, 8-token tiles), compiled for
# sm_80 (A100) and sm_90 (H100/H200) machine code plus sm_90 PTX for newer cards. The runtime is
# linked statically (cudart_static), so a binary needs only the driver (libcuda) at run time and
# starts, and fails cleanly, on machines without one.
set(BITNET_HAVE_CUDA OFF)
file(GLOB BITNET_CUDA_C_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/kernels/cuda/*.c)
target_sources(bitnet PRIVATE ${BITNET_CUDA_C_SOURCES})
if(NOT BITNET_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    file(GLOB BITNET_CUDA_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/kernels/cuda/*.cu)
    if(BITNET_CUDA_SOURCES)
      if(NOT CMAKE_CUDA_ARCHITECTURES)
        set(CMAKE_CUDA_ARCHITECTURES "80-real;90-real;90-virtual")
      endif()
      enable_language(CUDA)
      set(BITNET_HAVE_CUDA ON)
    endif()
  elseif(BITNET_CUDA STREQUAL "ON")
    message(FATAL_ERROR "BITNET_CUDA=ON but no nvcc was found")
  endif()
endif()
if(BITNET_HAVE_CUDA)
  find_package(CUDAToolkit REQUIRED)
  # bitnet was created before CUDA was enabled: give it the architectures (it links the kernels)
  set_target_properties(bitnet PROPERTIES CUDA_ARCHITECTURES "${CMAKE_CUDA_ARCHITECTURES}")
  set(CMAKE_CUDA_STANDARD 17)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  add_library(bitnet_cuda STATIC ${BITNET_CUDA_SOURCES})
  target_include_directories(bitnet_cuda PRIVATE ${CMAKE_SOURCE_DIR}/include ${CMAKE_SOURCE_DIR}/src)
  # Warnings as for the C code, on the host side through nvcc; -Werror=all-warnings keeps device
  # code warning-free too.
  target_compile_options(bitnet_cuda PRIVATE
    $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra --Werror=all-warnings>)
  target_link_libraries(bitnet_cuda PUBLIC CUDA::cudart_static)
  target_link_libraries(bitnet PUBLIC bitnet_cuda)
  target_compile_definitions(bitnet PUBLIC BITNET_HAVE_CUDA=1)
  message(STATUS "bitnet-c: CUDA backend ON (${CMAKE_CUDA_COMPILER}, ${CMAKE_CUDA_ARCHITECTURES})")
else()
  message(STATUS "bitnet-c: CUDA backend OFF")
endif()
