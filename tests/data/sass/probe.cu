// Two tiny kernels whose SASS tests/test_build.py's parser reads (recorded with cuobjdump -sass):
// one tensor-core product (HMMA) and one FP32 FMA loop (no tensor-core instruction).
#include "tc.cuh"

extern "C" __global__ void probe_mma(const unsigned* a, const unsigned* b, float* d) {
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
    mma16816(acc, a + 4 * threadIdx.x, b + 2 * threadIdx.x);
    for (int i = 0; i < 4; ++i) d[4 * threadIdx.x + i] = acc[i];
}

extern "C" __global__ void probe_fma(const float* a, float* d, int n) {
    float s = 0.f;
    for (int i = 0; i < n; ++i) s = fmaf(a[i], s, 1.f);
    d[threadIdx.x] = s;
}
