"""Which GPUs this host has (via nvidia-smi, no CUDA import) and one GPU per running job.

Snakemake's ``resources: gpu=1`` limits how many GPU jobs run at once (``--resources gpu=N``) but
does not say *which* GPU a job gets. ``claim_gpu`` gives each job its own device by taking an
exclusive file lock per GPU index, then sets CUDA_VISIBLE_DEVICES before CUDA is initialised.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    uuid: str
    arch: str  # nvcc target, e.g. "sm_90"

    @property
    def slug(self) -> str:
        """Directory name for results: 'NVIDIA H100 80GB HBM3' -> 'h100-80gb-hbm3'."""
        return gpu_slug(self.name)


def gpu_slug(name: str) -> str:
    name = re.sub(r"^(nvidia|tesla)\s+", "", name.strip(), flags=re.I)
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "gpu"


def detect_gpus() -> list[GpuInfo]:
    """GPUs visible to nvidia-smi; empty when there is no driver or no device.

    FUSED_LAYER_NO_GPU=1 hides every GPU (a model-only run on a GPU host, as in the tests).
    """
    if os.environ.get("FUSED_LAYER_NO_GPU") or shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index,name,uuid,compute_cap", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return []
    if out.returncode != 0:
        return []
    gpus = []
    for line in out.stdout.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 4 and parts[0].isdigit():
            gpus.append(GpuInfo(int(parts[0]), parts[1], parts[2], "sm_" + parts[3].replace(".", "")))
    return gpus


@contextlib.contextmanager
def claim_gpu(lock_dir: str | Path = ".snakemake/gpu-locks", poll_s: float = 1.0):
    """Hold one GPU exclusively for the duration of the block; yields its CUDA_VISIBLE_DEVICES value.

    Honours an existing CUDA_VISIBLE_DEVICES (set by a cluster scheduler) by doing nothing.
    """
    if "CUDA_VISIBLE_DEVICES" in os.environ:  # may hold indices or GPU UUIDs
        yield os.environ["CUDA_VISIBLE_DEVICES"].split(",")[0]
        return
    count = max(1, len(detect_gpus()))
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    while True:
        for index in range(count):
            fh = open(lock_dir / f"gpu{index}.lock", "w")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                continue
            os.environ["CUDA_VISIBLE_DEVICES"] = str(index)
            try:
                yield str(index)
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
                fh.close()
            return
        time.sleep(poll_s)  # every GPU busy: Snakemake was given more GPU jobs than GPUs
