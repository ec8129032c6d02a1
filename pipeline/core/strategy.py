"""How a variant executes its fusion group: the one strategy enum of the project.

In core because the model (which pyramids cost what), the kernel registry and the stages all name
strategies; a ``StrEnum`` compares equal to its plain string, so tables and configs keep strings.
"""

from enum import StrEnum


class Strategy(StrEnum):
    LBL = "lbl"  # one kernel per layer, intermediates in device memory
    REUSE = "reuse"  # one pyramid kernel; the overlap with the previous tile kept on chip
    RECOMPUTE = "recompute"  # one pyramid kernel; every block builds its whole pyramid
    VENDOR = "vendor"  # PyTorch / cuDNN

    @property
    def fused(self) -> bool:
        return self in FUSED_STRATEGIES

    @property
    def own_kernels(self) -> bool:
        """The project's own CUDA kernels (vendor runs PyTorch's)."""
        return self is not Strategy.VENDOR


FUSED_STRATEGIES: tuple[Strategy, ...] = (Strategy.REUSE, Strategy.RECOMPUTE)
