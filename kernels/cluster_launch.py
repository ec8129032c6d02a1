"""Launch a kernel with a thread-block cluster shape chosen at run time (``cuLaunchKernelEx``).

CuPy's RawKernel launches no clusters (cupy/cupy#8780), and the fused kernel's cluster spans the
column strips of one image row, whose number depends on the input width. The driver API call is
made through ctypes with the structures of ``cuda.h`` (CUDA 12+): ``CUlaunchConfig`` with one
``CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION`` attribute.
"""

import ctypes
import functools

CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION = 4


class _Dim3(ctypes.Structure):
    _fields_ = [("x", ctypes.c_uint), ("y", ctypes.c_uint), ("z", ctypes.c_uint)]


class _AttrValue(ctypes.Union):
    _fields_ = [("pad", ctypes.c_char * 64), ("align", ctypes.c_uint64), ("clusterDim", _Dim3)]


class _Attr(ctypes.Structure):
    _fields_ = [("id", ctypes.c_int), ("pad", ctypes.c_char * 4), ("value", _AttrValue)]


class _Config(ctypes.Structure):
    _fields_ = [("gridDimX", ctypes.c_uint), ("gridDimY", ctypes.c_uint), ("gridDimZ", ctypes.c_uint),
                ("blockDimX", ctypes.c_uint), ("blockDimY", ctypes.c_uint), ("blockDimZ", ctypes.c_uint),
                ("sharedMemBytes", ctypes.c_uint), ("hStream", ctypes.c_void_p),
                ("attrs", ctypes.POINTER(_Attr)), ("numAttrs", ctypes.c_uint)]  # fmt: skip


@functools.lru_cache(maxsize=1)
def _driver():
    lib = ctypes.CDLL("libcuda.so.1")
    fn = lib.cuLaunchKernelEx
    fn.argtypes = [ctypes.POINTER(_Config), ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p]
    fn.restype = ctypes.c_int
    return fn


def _ctype(arg):
    """A kernel argument as the ctypes value the driver copies: device pointers, int32, float32."""
    import numpy as np

    if hasattr(arg, "data") and hasattr(arg.data, "ptr"):  # cupy.ndarray
        return ctypes.c_void_p(arg.data.ptr)
    if isinstance(arg, np.int32):
        return ctypes.c_int32(int(arg))
    if isinstance(arg, np.float32):
        return ctypes.c_float(float(arg))
    raise TypeError(f"cluster launch: unsupported argument type {type(arg).__name__}")


def launch_cluster(kernel, grid: tuple[int, int, int], block: tuple[int, int, int], args: tuple,
                   cluster: tuple[int, int, int], shared_mem: int = 0, stream_ptr: int | None = None) -> None:  # fmt: skip
    """Launch the CuPy ``Function`` ``kernel`` with ``cluster`` blocks per cluster on the current stream."""
    import cupy

    if any(g % c for g, c in zip(grid, cluster)):
        raise ValueError(f"grid {grid} is not a multiple of the cluster {cluster}")
    values = [_ctype(a) for a in args]
    params = (ctypes.c_void_p * len(values))(*[ctypes.cast(ctypes.pointer(v), ctypes.c_void_p) for v in values])
    attr = _Attr(id=CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION)
    attr.value.clusterDim = _Dim3(*cluster)
    stream = cupy.cuda.get_current_stream().ptr if stream_ptr is None else stream_ptr
    cfg = _Config(*grid, *block, int(shared_mem), ctypes.c_void_p(stream), ctypes.pointer(attr), 1)
    fn = getattr(kernel, "kernel", kernel)  # a RawKernel holds its cupy.cuda.Function (the CUfunction)
    err = _driver()(ctypes.byref(cfg), ctypes.c_void_p(fn.ptr), params, None)
    if err != 0:
        raise RuntimeError(f"cuLaunchKernelEx failed with CUresult {err} (grid {grid}, cluster {cluster}, "
                           f"{shared_mem} bytes of shared memory per block)")  # fmt: skip


def max_active_clusters(kernel, grid: tuple[int, int, int], block: tuple[int, int, int],
                        cluster: tuple[int, int, int], shared_mem: int = 0) -> int:  # fmt: skip
    """How many clusters of this shape the GPU can hold at once (cuOccupancyMaxActiveClusters)."""
    lib = ctypes.CDLL("libcuda.so.1")
    fn = lib.cuOccupancyMaxActiveClusters
    fn.argtypes = [ctypes.POINTER(ctypes.c_int), ctypes.c_void_p, ctypes.POINTER(_Config)]
    attr = _Attr(id=CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION)
    attr.value.clusterDim = _Dim3(*cluster)
    cfg = _Config(*grid, *block, int(shared_mem), None, ctypes.pointer(attr), 1)
    n = ctypes.c_int(0)
    err = fn(ctypes.byref(n), ctypes.c_void_p(getattr(kernel, "kernel", kernel).ptr), ctypes.byref(cfg))
    if err != 0:
        raise RuntimeError(f"cuOccupancyMaxActiveClusters failed with CUresult {err}")
    return n.value
