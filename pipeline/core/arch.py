"""Per-architecture limits the plan and the build need, from the CUDA C++ Programming Guide's
"Technical Specifications" table (no GPU needed to read them)."""

# Per-SM limits by compute capability (CUDA C Programming Guide, "Technical Specifications").
SM_LIMITS = {
    # arch: (registers per SM, max warps per SM, register allocation unit per warp, smem per SM bytes)
    "sm_75": (65536, 32, 256, 64 * 1024),
    "sm_80": (65536, 64, 256, 164 * 1024),
    "sm_86": (65536, 48, 256, 100 * 1024),
    "sm_89": (65536, 48, 256, 100 * 1024),
    "sm_90": (65536, 64, 256, 228 * 1024),
    "sm_90a": (65536, 64, 256, 228 * 1024),
}

# Largest dynamic shared memory one block may opt in to (bytes), by target.
MAX_SMEM_PER_BLOCK_BYTES = {
    "sm_75": 64 * 1024, "sm_80": 163 * 1024, "sm_86": 99 * 1024, "sm_89": 99 * 1024,
    "sm_90": 227 * 1024, "sm_90a": 227 * 1024,
}  # fmt: skip
