"""What every stage's ``__main__`` tail shares: claim the GPU, log, stamp and write the result JSON.

A GPU stage's tail is one call::

    run_stage(snakemake, lambda sm, v: time_variant(v.name, ...), gpu=True)

``run_stage`` takes an exclusive lock on one GPU before CUDA starts (``claim_gpu``: one timed job
per GPU), logs to the rule's log file, refuses to measure a variant whose ``verify.json`` did not
pass, calls the body with the job's :class:`~kernels.registry.Variant` record, and writes the result
with ``schema_version`` and the record's fields (variant, network, group, strategy, tile,
precision), so aggregation reads fields and never parses names.
"""

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kernels.registry import Variant

# 2: every result file carries the variant record (schema 1 had only the name); archives are
# migrated once, when archived (analysis/archive.py).
SCHEMA_VERSION = 2


def stamp(result: dict, variant: Variant | None = None, network: str | None = None) -> dict:
    """``result`` with the schema version and the variant record in front (network from the path)."""
    head: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    if variant is not None:
        head.update(variant.record())
        if network:
            head["network"] = network
    return {**head, **{k: v for k, v in result.items() if k not in head}}


def write_json(path: str | Path, result: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(result, indent=1))


def single_path(value: Any) -> str | None:
    """A Snakemake input that may be a path, or an empty list (the vendor variant has no cubin)."""
    if isinstance(value, (list, tuple)):
        return str(value[0]) if value else None
    return str(value) if value else None


def network_input_hw(network: str) -> tuple[int, int]:
    """Input height and width of a network from its YAML (AlexNet 227, VGG 224)."""
    from pipeline.core.networks import load_network

    shape = load_network(network).input
    return shape.height, shape.width


def check_verified(verify_json: str | Path) -> dict:
    """Refuse to measure a variant whose verification did not pass (the report must never show it)."""
    data = json.loads(Path(verify_json).read_text())
    if data.get("passed") is not True:
        raise RuntimeError(
            f"{verify_json} does not say passed: true; refusing to measure a variant that failed "
            f"verification (rel L2 error: {data.get('rel_l2_error', data.get('error', '?'))})"
        )
    return data


def run_stage(sm: Any, body: Callable[[Any, Variant | None], dict], gpu: bool = False) -> dict:
    """Run one Snakemake job of a stage: ``body(snakemake, variant)`` returns the result dict.

    ``variant`` is the job's record when the rule has a ``{variant}`` wildcard, else None. With
    ``gpu``, the job holds one GPU for its whole life, and an input named ``verify`` must say passed.
    """
    from pipeline.core.gpus import claim_gpu

    def job() -> dict:
        logging.basicConfig(filename=sm.log[0], level=logging.INFO)
        w = sm.wildcards
        variant = Variant.parse(w.variant) if "variant" in w.keys() else None
        if variant is not None and not variant.default_group and w.get("network") not in (None, variant.network):
            raise ValueError(f"{w.variant} is a variant of {variant.network}, not of {w.network} (the path's network)")
        if "verify" in sm.input.keys():
            check_verified(sm.input.verify)
        res = stamp(body(sm, variant), variant, w.get("network"))
        write_json(sm.output.json, res)
        return res

    if not gpu:
        return job()
    with claim_gpu():  # one GPU per job, set before CUDA starts
        return job()
