"""Another git revision's kernels, or the tree's with other defines, for an A/B against the working
tree in one process (``python -m pipeline.bench --against REV`` or ``--set NAME=VALUE``).

A revision's build of a hand-written variant is its kernel source and the defines ITS registry
gives it (tile bands, shared-memory sizes and chunk sizes change between revisions), compiled at
run time like the tree's side of the A/B (NVRTC, or nvcc for an sm_90a cluster build:
pipeline/core/gpu.py compile_module). Only the kernels come from the revision: the host code
(``kernels/api.py``: argument lists, grids, shared-memory sizes) is the tree's, so an A/B across a
change of the kernel's interface fails its float64 check instead of timing a wrong kernel.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from contextlib import contextmanager
from pathlib import Path

from pipeline.core.gpu import REPO

# What a revision's registry imports: its kernels, the pipeline.core modules and the network files.
EXPORTED = ("kernels", "pipeline", "config")


def resolve(rev: str, repo: Path = REPO) -> str:
    """The full commit hash of ``rev`` (a hash, a tag, ``HEAD~1``), or a ValueError saying why not."""
    r = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=repo,
                       capture_output=True, text=True)  # fmt: skip
    if r.returncode != 0:
        raise ValueError(f"{rev!r} is not a commit of {repo}")
    return r.stdout.strip()


def export_revision(rev: str, dest: Path | None = None, repo: Path = REPO) -> Path:
    """``git archive`` of the revision's kernels/, pipeline/ and config/ into ``dest/<hash[:12]>``
    (default: the system's temp folder), once per commit; returns that root."""
    sha = resolve(rev, repo)
    root = Path(dest or Path(tempfile.gettempdir()) / "fused-cnn-revisions") / sha[:12]
    if not (root / "kernels" / "registry.py").is_file():
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile() as tar:
            subprocess.run(["git", "archive", "--format=tar", sha, *EXPORTED], cwd=repo, stdout=tar, check=True)
            tar.seek(0)
            with tarfile.open(fileobj=tar) as t:
                t.extractall(root, filter="data")
    return root


_BUILDS = """
import json, sys
from kernels.registry import VARIANTS
print(json.dumps({n: {"source": VARIANTS[n].source, "defines": [list(d) for d in VARIANTS[n].defines]}
                  for n in sys.argv[1:] if n in VARIANTS and VARIANTS[n].source}))
"""


def revision_builds(root: Path, names: list[str]) -> dict[str, dict]:
    """name -> {"source": absolute path of the revision's source, "defines": ((name, value), ...)}
    for the hand-written variants among ``names`` that the revision's registry builds. The registry
    is imported in a subprocess, so the revision's modules never mix with the tree's."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    r = subprocess.run([sys.executable, "-c", _BUILDS, *names], cwd=root, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"the registry of {root.name} does not import:\n{r.stderr[-2000:]}")
    builds = json.loads(r.stdout)
    return {n: {"source": str(root / b["source"]), "defines": tuple((k, v) for k, v in b["defines"])}
            for n, b in builds.items()}  # fmt: skip


def parse_set(spec: str) -> dict[str, int]:
    """``"WCLUSTER=1,CONV2_CHUNK=64"`` -> {"WCLUSTER": 1, "CONV2_CHUNK": 64}; a ValueError that says
    what was expected."""
    out = {}
    for item in (i.strip() for i in spec.split(",") if i.strip()):
        name, eq, value = item.partition("=")
        if not eq or not name.isidentifier():
            raise ValueError(f"--set {spec!r}: expected NAME=INTEGER[,NAME=INTEGER], got {item!r}")
        try:
            out[name] = int(value)
        except ValueError:
            raise ValueError(f"--set {spec!r}: {name}'s value {value!r} is not an integer") from None
    if not out:
        raise ValueError(f"--set {spec!r}: no NAME=INTEGER given")
    return out


def defines_with(name: str, overrides: dict[str, int]) -> tuple[tuple[str, int], ...]:
    """The registry's defines of the hand-written variant ``name`` with ``overrides`` replacing or
    adding values, in registry order (added ones last). A fused_tc build whose overrides leave
    EXPECT_SMEM_BYTES alone gets it recomputed from the new values (tile, precision, band, clusters),
    so its static_assert checks the layout it will have, not the registry's."""
    from kernels.registry import VARIANTS, fused_tc_smem_bytes_of

    v = VARIANTS[name]
    d = dict(v.defines) | overrides
    if v.source == "kernels/fused_tc.cu" and "EXPECT_SMEM_BYTES" not in overrides:
        d["EXPECT_SMEM_BYTES"] = fused_tc_smem_bytes_of(d)
    return tuple(d.items())


@contextmanager
def variant_built_as(name: str, source: str, defines: tuple) -> None:
    """Within the block, the registry's ``name`` builds from ``source`` with ``defines`` (make_forward,
    time_variant and the phases stage look the record up by name); restored after."""
    from kernels import registry

    saved = registry.VARIANTS[name]
    registry.VARIANTS[name] = dataclasses.replace(saved, source=source, defines=defines)
    try:
        yield
    finally:
        registry.VARIANTS[name] = saved
