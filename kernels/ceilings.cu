// Roofline ceilings: microbenchmarks run once per GPU by pipeline/ceilings.py.
//
// ceil_copy     DRAM bandwidth: grid-stride 16-byte copy (4 loads in flight per thread) of a
//               buffer far larger than L2
//               (bytes moved = bytes read + bytes written).
// ceil_l2_read  L2 bandwidth: repeated 16-byte reads (ld.global.cg, L2 only, L1 bypassed) of a
//               buffer well inside L2; four independent loads in flight per thread.
// ceil_fma      FP32 FMA peak: 8 independent register-resident FFMA chains per thread.
// ceil_mma_fp16 tensor-core peak, fp16 inputs and FP32 accumulation: MMA_CHAINS independent
// ceil_mma_bf16 register-resident mma.sync.m16n8k16 chains per warp (the instruction the project's
//               16-bit kernels use, kernels/tc.cuh), 2*16*8*16 FLOPs each; bf16 likewise.
// ceil_mma_tf32 the same with mma.sync.m16n8k8 TF32 (kernels/chain.cuh's TF32 products), 2*16*8*8.
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

// ---------------------------------------------------------------- tensor cores
// The mma is written out here rather than taken from kernels/tc.cuh: this file is compiled alone
// from a string by NVRTC (no include path), and it needs both precisions in one module while
// tc.cuh picks one per build (PREC). The instruction and operand layout are the same.
#define MMA_CHAINS 8  // pipeline/stages/ceilings.py's MMA_CHAINS counts the FLOPs with it

enum MmaKind { MMA_FP16, MMA_BF16, MMA_TF32 };

template <bool BF16>
__device__ __forceinline__ void ceil_mma16816(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
#if __CUDA_ARCH__ >= 800
    if (BF16)
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    else
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

__device__ __forceinline__ void ceil_mma1688_tf32(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
#if __CUDA_ARCH__ >= 800
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

// Two 16-bit values in [0.5, 1) with mantissas varying by lane and register: operands that toggle
// bits as real data does (all-zero operands draw less power, so the card would clock higher than
// under a real GEMM), and sums that stay finite over every iteration.
// TF32: a float in [0.5, 1) with a 10-bit mantissa varying by lane and register.
template <int KIND>
__device__ __forceinline__ unsigned ceil_mma_operand(unsigned seed) {
    const unsigned h = seed * 2654435761u;
    if (KIND == MMA_TF32) return 0x3F000000u | (h & 0x7FE000u);
    constexpr bool BF16 = KIND == MMA_BF16;
    const unsigned lo = BF16 ? (0x3F00u | (h & 0x7Fu)) : (0x3800u | (h & 0x3FFu));
    const unsigned hi = BF16 ? (0x3F00u | ((h >> 16) & 0x7Fu)) : (0x3800u | ((h >> 16) & 0x3FFu));
    return lo | (hi << 16);
}

// __launch_bounds__(256, 4): at most 64 registers, so the launch's sms x 4 blocks all fit at once
// (one wave; a partial second wave would leave SMs idle and understate the peak).
template <int KIND>
__device__ __forceinline__ void ceil_mma_body(float* __restrict__ sink, int iters) {
    const int tid = blockIdx.x * blockDim.x + threadIdx.x;
    unsigned a[4], b[2];
#pragma unroll
    for (int i = 0; i < 4; ++i) a[i] = ceil_mma_operand<KIND>(tid * 8 + i);
#pragma unroll
    for (int i = 0; i < 2; ++i) b[i] = ceil_mma_operand<KIND>(tid * 8 + 4 + i);
    float d[MMA_CHAINS][4];
#pragma unroll
    for (int c = 0; c < MMA_CHAINS; ++c)
#pragma unroll
        for (int j = 0; j < 4; ++j) d[c][j] = 0.f;
    for (int i = 0; i < iters; ++i)
#pragma unroll
        for (int c = 0; c < MMA_CHAINS; ++c) {
            if (KIND == MMA_TF32)
                ceil_mma1688_tf32(d[c], a, b);
            else
                ceil_mma16816<KIND == MMA_BF16>(d[c], a, b);
        }
    float s = 0.f;
#pragma unroll
    for (int c = 0; c < MMA_CHAINS; ++c) s += (d[c][0] + d[c][1]) + (d[c][2] + d[c][3]);
    if (s == 1.2345e30f) sink[tid] = s;
}

extern "C" __global__ void __launch_bounds__(256, 4) ceil_mma_fp16(float* __restrict__ sink, int iters) {
    ceil_mma_body<MMA_FP16>(sink, iters);
}

extern "C" __global__ void __launch_bounds__(256, 4) ceil_mma_bf16(float* __restrict__ sink, int iters) {
    ceil_mma_body<MMA_BF16>(sink, iters);
}

extern "C" __global__ void __launch_bounds__(256, 4) ceil_mma_tf32(float* __restrict__ sink, int iters) {
    ceil_mma_body<MMA_TF32>(sink, iters);
}
