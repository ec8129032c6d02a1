"""GPU detection and the per-job GPU claim (no GPU needed)."""

import os
import subprocess
import sys
import time

from pipeline.core.gpus import claim_gpu, detect_gpus, gpu_slug


def test_gpu_slug():
    assert gpu_slug("NVIDIA H100 80GB HBM3") == "h100-80gb-hbm3"
    assert gpu_slug("NVIDIA H200") == "h200"
    assert gpu_slug("Tesla V100-SXM2-16GB") == "v100-sxm2-16gb"


def test_no_gpu_switch(monkeypatch):
    monkeypatch.setenv("FUSED_LAYER_NO_GPU", "1")
    assert detect_gpus() == []


def test_claim_gpu_is_exclusive(tmp_path, monkeypatch):
    """A second job waits while the only GPU is held: the lock is a real OS file lock."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("FUSED_LAYER_NO_GPU", "1")  # one slot, whatever this host has
    probe = (
        "import os, sys, time; sys.path.insert(0, %r); from pipeline.core.gpus import claim_gpu\n"
        "t = time.time()\n"
        "with claim_gpu(%r, poll_s=0.05) as i: print(round(time.time() - t, 2), os.environ['CUDA_VISIBLE_DEVICES'])"
    ) % (os.getcwd(), str(tmp_path))
    with claim_gpu(tmp_path) as index:
        assert index == "0" and os.environ["CUDA_VISIBLE_DEVICES"] == "0"
        env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
        waiter = subprocess.Popen([sys.executable, "-c", probe], stdout=subprocess.PIPE, text=True, env=env)
        time.sleep(0.5)
        assert waiter.poll() is None  # still waiting for the lock
    waited_s, device = waiter.communicate(timeout=10)[0].split()
    assert float(waited_s) >= 0.3 and device == "0"


def test_claim_gpu_leaves_a_scheduler_choice_alone(monkeypatch, tmp_path):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-807f3ec6-a192-76fd-8693-d2a4557e138e")
    with claim_gpu(tmp_path) as device:
        assert device == "GPU-807f3ec6-a192-76fd-8693-d2a4557e138e"
    assert not any(tmp_path.iterdir())  # no lock taken
