"""The value and arithmetic precisions, and what each stores: one list for the registry, the model
of the generated kernels and the report.

fp32: FP32 values, CUDA-core FFMA. tf32: FP32 values, products on the tensor cores with TF32
operands (the hand-written and generated kernels, and the PyTorch anchors with TF32 allowed).
fp16, bf16: 16-bit values, tensor cores.
Accumulation is FP32 everywhere; biases stay FP32.
"""

PRECISIONS = ("fp32", "tf32", "fp16", "bf16")
BYTES_PER_VALUE = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2}  # storage of maps and weights
