"""CUDA kernels of the AlexNet front end, their registry (CPU-only) and the Python API (CuPy)."""
