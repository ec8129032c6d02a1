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


@pytest.fixture
def archived_run_copy(tmp_path):
    """Copy an archived GPU run (reports/archive/<name>) under tmp_path and return its root, with
    test-only additions: keys merged into its ceilings.json, and into chosen time.json files
    (``{"<variant>/b<batch>": {...}}``). The archive itself is never touched (its README: no test
    data there); the copy keeps the folder name, so its source label reads the same."""
    import json
    import shutil
    from pathlib import Path

    archive = Path(__file__).resolve().parents[1] / "reports" / "archive"

    copies = []

    def make(name: str, ceilings: dict | None = None, times: dict | None = None) -> Path:
        copies.append(name)
        root = tmp_path / f"copy{len(copies)}" / name
        shutil.copytree(archive / name, root)
        edits = [(p, ceilings) for p in root.glob("*/ceilings.json")]
        for key, extra in (times or {}).items():
            (found,) = root.glob(f"*/*/{key}/time.json")  # exactly one, or the test names a wrong file
            edits.append((found, extra))
        for path, extra in edits:
            if extra:
                path.write_text(json.dumps({**json.loads(path.read_text()), **extra}, indent=1))
        return root

    return make
