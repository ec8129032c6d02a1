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
__device__ __forceinline__ float lrn_value(float a, float sumsq, float alpha_over_n, float beta, float k) {
    return a * exp2f(-beta * __log2f(k + alpha_over_n * sumsq));
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
