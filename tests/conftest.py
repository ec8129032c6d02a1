"""Shared fixtures."""

import pytest

from pipeline.core.gpu import gpu_skip_reason


@pytest.fixture
def cupy_device():
    """CuPy, when it sees a CUDA device; otherwise the test skips and says why."""
    reason = gpu_skip_reason()
    if reason is not None:
        pytest.skip(f"needs an NVIDIA GPU: {reason}")
    import cupy

    return cupy
