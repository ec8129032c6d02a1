"""From the configuration to the work: which variants, which batches, which files to make.

The Snakefile asks this module for its targets, so the target logic is testable without Snakemake.
"""

from __future__ import annotations

import shutil

from pipeline.gpus import detect_gpus


def kernel_variants(config: dict) -> list[str]:
    """Variant names to run, in report order: the baseline first, the vendor reference last."""
    k = config["kernels"]
    names = ["lbl"]
    for strategy in k.get("strategies", ["reuse", "recompute"]):
        names += [f"fused-{strategy}-t{t}" for t in k.get("tile_sizes", [2, 4])]
    if k.get("vendor", True):
        names.append("vendor")
    return names


def built_variants(config: dict) -> list[str]:
    """Variants with a CUDA source (the vendor path runs cuDNN, nothing to build)."""
    return [v for v in kernel_variants(config) if v != "vendor"]


def target_arch(config: dict) -> str:
    """nvcc target: the present GPU's, else the configured one."""
    gpus = detect_gpus()
    return gpus[0].arch if gpus else config["kernels"].get("arch", "sm_90")


def gpu_name(config: dict) -> str | None:
    """Results directory name of the GPU measured on this host, or None without a GPU."""
    gpus = detect_gpus()
    return gpus[0].slug if gpus else None


def model_targets(config: dict) -> list[str]:
    out = [f"results/model/{n}/pyramids.csv" for n in config["networks"]]
    out += [f"results/model/{n}/dse.csv" for n in config["networks"]]
    return out + ["results/model/paper_comparison.csv", "results/plan.csv"]


def build_targets(config: dict, arch: str) -> list[str]:
    if shutil.which("nvcc") is None:
        return []
    return [f"results/build/{arch}/{v}.json" for v in built_variants(config)]


def measurement_targets(config: dict, gpu: str | None) -> list[str]:
    """verify/time/profile files for every variant x batch; empty without a GPU."""
    if gpu is None:
        return []
    k = config["kernels"]
    net = k["network"]
    out = [f"results/{gpu}/ceilings.json", f"results/{gpu}/provenance.json"]
    for v in kernel_variants(config):
        for b in k["batches"]:
            base = f"results/{gpu}/{net}/{v}/b{b}"
            out += [f"{base}/time.json"]
            if config.get("profile", {}).get("enabled", True):
                out += [f"{base}/profile.json"]
    return out
