"""CUDA graphs of a forward pass, so timing sees the GPU's work and not the host's launch loop.

A forward pass is a few kernel launches; at batch 1 the GPU finishes each kernel faster than
Python hands it the next (a CuPy launch with 18 arguments costs the host tens of microseconds), and
CUDA events around eager launches then time the host. A graph captured once and replayed launches
the whole pass with one call, as a deployed real-time pipeline would (PyTorch's
``mode="reduce-overhead"`` and TensorRT do the same). ``pipeline/stages/time.py`` replays these.

- :func:`cupy_graph`: the project's kernels (CuPy launches on the current stream), captured by
  CuPy's stream capture;
- :func:`torch_graph`: PyTorch work (the vendor anchors, cuDNN's convolutions alone), captured by
  ``torch.cuda.graph`` so its allocator keeps the captured intermediates in a private pool.

Both return a zero-argument callable that replays the graph on CuPy's current stream, where the
timing events are recorded. CuPy and torch are imported lazily.
"""

from __future__ import annotations

from typing import Any, Callable


def cupy_graph(call: Callable[[], Any]) -> Callable[[], None]:
    """Capture ``call()`` (CuPy launches on the current stream; run it once before, so nothing lazy
    happens inside the capture) and return a replay on the then-current stream."""
    import cupy

    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        stream.begin_capture()
        try:
            call()
        finally:
            graph = stream.end_capture()

    def replay() -> None:
        graph.launch(cupy.cuda.get_current_stream())

    return replay


_TORCH_STREAMS: dict[int, Any] = {}  # CuPy stream pointer -> torch's handle of it (made once)


def torch_stream_of_cupy():
    """torch's view of CuPy's current stream (the legacy default stream when CuPy uses it)."""
    import cupy
    import torch

    ptr = cupy.cuda.get_current_stream().ptr
    if ptr not in _TORCH_STREAMS:
        _TORCH_STREAMS[ptr] = torch.cuda.ExternalStream(ptr) if ptr else torch.cuda.default_stream()
    return _TORCH_STREAMS[ptr]


def torch_graph(call: Callable[[], Any], pool: Any = None) -> tuple[Callable[[], None], Any]:
    """Capture the torch work ``call()`` (warm: cuDNN's benchmark and torch.compile's autotuning done)
    with ``torch.cuda.graph``; return (replay on CuPy's current stream, the memory pool, which later
    graphs of the same forward may share: they replay one at a time on one stream)."""
    import torch

    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad(), torch.cuda.graph(graph, pool=pool):
        call()
    torch.cuda.synchronize()

    def replay() -> None:
        with torch.cuda.stream(torch_stream_of_cupy()):
            graph.replay()

    return replay, graph.pool()
