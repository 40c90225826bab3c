// doctest main of test_cuda. Without a device the GPU cases return at once;
// the run then ends with the line CI greps for:
//   SKIPPED: no CUDA device (<reason>): <n> GPU test cases skipped
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "cuda_test_util.hpp"

int main(int argc, char** argv) {
    doctest::Context ctx(argc, argv);
    if (polymath::cuda::is_available())
        std::printf("test_cuda: running on %s\n", polymath::cuda::device_description(0).c_str());
    const int rc = ctx.run();
    if (polymath::test::gpu_skips() > 0)
        std::printf("SKIPPED: no CUDA device (%s): %d GPU test cases skipped; the device-free cases above ran\n",
                    polymath::cuda::unavailable_reason().c_str(), polymath::test::gpu_skips());
    return rc;
}
