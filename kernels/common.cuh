// Shared device helpers for the AlexNet front-end kernels (lbl.cu, fused.cu).
// Everything here is __device__ only: the extern "C" entries live in the .cu files so that
// `nvcc -cubin` builds a module that cupy.RawModule(path=...) can load by name.
#pragma once

#ifndef LRN_SIZE
#define LRN_SIZE 5  // across-channel window; the fused LRN keeps (LRN_SIZE-1)/2 halo channels in registers
#endif

// Caffe LRN: b = a * (k + alpha/n * sum a^2)^(-beta), as exp2(-beta * log2(base)) on the SFU
// (lg2.approx / ex2.approx: ~2 ulp each, so ~1e-7 relative for the bases LRN sees, k > 0).
// powf cost ~40 instructions with branches per value and was ~14 % of the fused kernel's samples.
// The flush-to-zero forms: the base is at least k (> 0, and taken to be a normal number, >= 2^-126),
// so only a scale under 2^-126 (flushed to 0) can differ. exp2f and __log2f add a denormal test and fix-up per value, whose
// predicates ptxas serialised through one register in the wgmma builds of the fused kernel (its
// LRN phases 1.5x slower; perf-notes step 29).
__device__ __forceinline__ float lrn_value(float a, float sumsq, float alpha_over_n, float beta, float k) {
    float log2_base, scale;
    asm("lg2.approx.ftz.f32 %0, %1;" : "=f"(log2_base) : "f"(k + alpha_over_n * sumsq));
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(scale) : "f"(-beta * log2_base));
    return a * scale;
}

// cp.async 16-byte global->shared copy (sm_80+), bypassing registers; completes on commit/wait groups.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
    unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem));
}
// 4-byte variant for gathers that are not 16-byte aligned (the conv1 input patch).
__device__ __forceinline__ void cp_async4(void* smem, const void* gmem) {
    unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(s), "l"(gmem));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

// Two 8x8 b16 matrices; lanes 0-15 give the row addresses (the others' are ignored).
__device__ __forceinline__ void ldmatrix_x2(unsigned* r, const void* smem_row) {
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem_row));
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(s));
}

// Four 8x8 b16 matrices (8 rows of 16 bytes) from shared memory; lane l gives the row address of matrix l/8, row l%8.
__device__ __forceinline__ void ldmatrix_x4(unsigned* r, const void* smem_row) {
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem_row));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}

// Phase timing (-DPHASE_TIMING=1, pipeline/stages/phases.py): thread 0 adds the SM clocks since
// timestamp t to counters[p] and restarts t; placed right after a barrier, so the block, not thread 0
// alone, has finished the phase. Without PHASE_TIMING the marks compile to nothing.
#if PHASE_TIMING
#define PHASE_MARK_INTO(counters, p, t)                                          \
    do {                                                                         \
        if (threadIdx.x == 0) {                                                  \
            const long long now_ = clock64();                                    \
            atomicAdd(&(counters)[p], (unsigned long long)(now_ - (t)));          \
            (t) = now_;                                                          \
        }                                                                        \
    } while (0)
#else
#define PHASE_MARK_INTO(counters, p, t)
#endif

__device__ __forceinline__ unsigned dynamic_smem_bytes() {
    unsigned r;
    asm volatile("mov.u32 %0, %%dynamic_smem_size;" : "=r"(r));
    return r;
}

// body(k) for k = 0..N-1, unrolled U steps per loop trip: a GEMM's k loop over one shared-memory
// stage. A shorter unrolled body misses the instruction cache less (docs/perf-notes.md step 14).
template <int N, int U, class Body>
__device__ __forceinline__ void for_k_unrolled(Body&& body) {
    static_assert(N % U == 0, "the unroll must divide the stage depth");
#pragma unroll 1
    for (int k0 = 0; k0 < N; k0 += U)
#pragma unroll
        for (int k1 = 0; k1 < U; ++k1) body(k0 + k1);
}

// How a map's stored values become FP32 and back: identity for float maps; tc.cuh adds the 16-bit
// maps (fp16 or bf16 bits, round to nearest even).
template <class T>
struct MapValue;
template <>
struct MapValue<float> {
    static __device__ __forceinline__ float load(float v) { return v; }
    static __device__ __forceinline__ float store(float v) { return v; }
};

// Caffe across-channel LRN over NCHW maps of T, FP32 arithmetic. One thread per (chunk of
// channels, image, pixel): `chunks` splits the C channels into runs a thread walks with a running
// sum of squares over the window [c - pre, c + post]; consecutive threads touch consecutive pixels
// of one channel plane, so every load and store is coalesced, and re-reads of the window hit L1.
// chunks = 1 (one thread walks all C) where the batch gives enough pixels for the GPU; a small
// batch takes more chunks, else its few threads would walk C channels of L2 latency each
// (kernels/api.py lrn_chunks). The body of lbl.cu's and lbl_tc.cu's LRN kernels.
template <class T>
__device__ __forceinline__ void lrn_across_channels(const T* __restrict__ x, T* __restrict__ y, int N, int C, int HW,
                                                    int size, float alpha, float beta, float k, int chunks) {
    using V = MapValue<T>;
    const int idx = blockIdx.x * blockDim.x + threadIdx.x, NHW = N * HW;
    if (idx >= NHW * chunks) return;
    const int chunk = idx / NHW, q = idx - chunk * NHW;
    const int n = q / HW, pix = q - n * HW;
    const int c0 = chunk * C / chunks, c1 = (chunk + 1) * C / chunks;
    const T* xs = x + (size_t)n * C * HW + pix;
    T* ys = y + (size_t)n * C * HW + pix;
    const int pre = (size - 1) / 2, post = size - 1 - pre;
    const float alpha_over_n = alpha / size;
    float sum = 0.f;  // the window of c0 but its last channel: [c0 - pre, c0 + post)
    for (int c = max(c0 - pre, 0); c < c0 + post && c < C; ++c) {
        const float v = V::load(__ldg(xs + (size_t)c * HW));
        sum += v * v;
    }
    for (int c = c0; c < c1; ++c) {
        if (c + post < C) {
            const float v = V::load(__ldg(xs + (size_t)(c + post) * HW));
            sum += v * v;
        }
        ys[(size_t)c * HW] = V::store(lrn_value(V::load(__ldg(xs + (size_t)c * HW)), fmaxf(sum, 0.f), alpha_over_n, beta, k));
        if (c - pre >= 0) {
            const float v = V::load(__ldg(xs + (size_t)(c - pre) * HW));
            sum -= v * v;
        }
    }
}

// Max pool over NCHW maps of T (square window, no padding, floor rounding); one thread per output.
// The max of stored values is one of them, so the store is exact.
template <class T>
__device__ __forceinline__ void maxpool_window(const T* __restrict__ x, T* __restrict__ y, int NC, int H, int W, int OH,
                                               int OW, int KS, int stride) {
    using V = MapValue<T>;
    const int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= NC * OH * OW) return;
    const int nc = idx / (OH * OW), r = idx - nc * OH * OW;
    const int oy = r / OW, ox = r - oy * OW;
    const T* xs = x + (size_t)nc * H * W + (oy * stride) * W + ox * stride;
    float m = __int_as_float(0xff800000);  // -inf (NVRTC has no math.h macros)
    for (int ky = 0; ky < KS; ++ky)
        for (int kx = 0; kx < KS; ++kx) m = fmaxf(m, V::load(__ldg(xs + ky * W + kx)));
    y[idx] = V::store(m);
}
