// Roofline ceilings: microbenchmarks run once per GPU by pipeline/ceilings.py.
//
// ceil_copy     DRAM bandwidth: grid-stride 16-byte copy (4 loads in flight per thread) of a
//               buffer far larger than L2
//               (bytes moved = bytes read + bytes written).
// ceil_l2_read  L2 bandwidth: repeated 16-byte reads (ld.global.cg, L2 only, L1 bypassed) of a
//               buffer well inside L2; four independent loads in flight per thread.
// ceil_fma      FP32 FMA peak: 8 independent register-resident FFMA chains per thread.
//
// Results are kept alive by a store that depends on them but (almost) never happens, so the
// compiler cannot drop the work and the stores cost no bandwidth.

extern "C" __global__ void ceil_copy(const float4* __restrict__ src, float4* __restrict__ dst,
                                     unsigned long long n) {
    // Four independent 16-byte loads in flight per thread before the stores: enough bytes in
    // flight per SM to approach DRAM bandwidth (one load per iteration stays near 80 %).
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x;
    for (; i + 3 * stride < n; i += 4 * stride) {
        const float4 v0 = src[i];
        const float4 v1 = src[i + stride];
        const float4 v2 = src[i + 2 * stride];
        const float4 v3 = src[i + 3 * stride];
        dst[i] = v0;
        dst[i + stride] = v1;
        dst[i + 2 * stride] = v2;
        dst[i + 3 * stride] = v3;
    }
    for (; i < n; i += stride) dst[i] = src[i];
}

extern "C" __global__ void ceil_l2_read(const float4* __restrict__ src, unsigned long long n,
                                        int reps, float* __restrict__ sink) {
    const unsigned long long tid = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x;
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    float a0 = 0.f, a1 = 0.f, a2 = 0.f, a3 = 0.f;
    for (int r = 0; r < reps; ++r) {
        unsigned long long i = tid;
        for (; i + 3 * stride < n; i += 4 * stride) {
            const float4 v0 = __ldcg(src + i);
            const float4 v1 = __ldcg(src + i + stride);
            const float4 v2 = __ldcg(src + i + 2 * stride);
            const float4 v3 = __ldcg(src + i + 3 * stride);
            a0 += v0.x + v0.y + v0.z + v0.w;
            a1 += v1.x + v1.y + v1.z + v1.w;
            a2 += v2.x + v2.y + v2.z + v2.w;
            a3 += v3.x + v3.y + v3.z + v3.w;
        }
        for (; i < n; i += stride) {
            const float4 v = __ldcg(src + i);
            a0 += v.x + v.y + v.z + v.w;
        }
    }
    const float s = a0 + a1 + a2 + a3;
    if (s == 1.2345e30f) sink[tid] = s;
}

extern "C" __global__ void ceil_fma(float* __restrict__ sink, int iters, float a, float b) {
    const int tid = blockIdx.x * blockDim.x + threadIdx.x;
    float x0 = tid * 1e-9f, x1 = x0 + 1e-3f, x2 = x0 + 2e-3f, x3 = x0 + 3e-3f;
    float x4 = x0 + 4e-3f, x5 = x0 + 5e-3f, x6 = x0 + 6e-3f, x7 = x0 + 7e-3f;
#pragma unroll 8
    for (int i = 0; i < iters; ++i) {
        x0 = fmaf(x0, a, b); x1 = fmaf(x1, a, b); x2 = fmaf(x2, a, b); x3 = fmaf(x3, a, b);
        x4 = fmaf(x4, a, b); x5 = fmaf(x5, a, b); x6 = fmaf(x6, a, b); x7 = fmaf(x7, a, b);
    }
    const float s = ((x0 + x1) + (x2 + x3)) + ((x4 + x5) + (x6 + x7));
    if (s == 1.2345e30f) sink[tid] = s;
}
