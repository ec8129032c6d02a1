"""Archiving a run: text results only, never overwritten, read back labelled as archived."""

import shutil
from pathlib import Path

import pytest

from analysis.aggregate import collect
from analysis.archive import archive_results

FIXTURE = Path(__file__).resolve().parent / "data" / "results_fixture"


@pytest.fixture
def results(tmp_path):
    """A results tree in the workflow's layout (the synthetic fixture) plus binary outputs."""
    res = tmp_path / "results"
    shutil.copytree(FIXTURE / "synthgpu", res / "synthgpu")
    shutil.copytree(FIXTURE / "model", res / "model")
    shutil.copy(FIXTURE / "plan.csv", res / "plan.csv")
    (res / "build" / "sm_90").mkdir(parents=True)
    (res / "build" / "sm_90" / "lbl.cubin").write_bytes(b"\x7fELF")
    (res / "build" / "sm_90" / "lbl.json").write_text('{"variant": "lbl", "kernels": []}')
    (res / "synthgpu" / "alexnet" / "lbl" / "b128" / "range.ncu-rep").write_bytes(b"NCU")
    return res


def test_archive_keeps_text_results_only(results, tmp_path):
    dest = archive_results(results, tmp_path / "archive", date="2026-11-26")
    assert dest.name == "synthgpu-2026-11-26"
    kept = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
    assert "plan.csv" in kept and "build/sm_90/lbl.json" in kept and "synthgpu/provenance.json" in kept
    assert not any(k.endswith((".cubin", ".ncu-rep")) for k in kept)
    with pytest.raises(SystemExit, match="never overwritten"):
        archive_results(results, tmp_path / "archive", date="2026-11-26")


def test_archived_rows_are_labelled(results, tmp_path):
    dest = archive_results(results, tmp_path / "archive", date="2026-11-26")
    tidy = collect([], None, [dest])
    assert not tidy.empty and (tidy["source"] == "archived synthgpu 2026-11-26").all()


def test_a_second_run_the_same_day_gets_a_label_and_counts_as_newer(results, tmp_path):
    from analysis.aggregate import source_newest_first, source_title

    first = archive_results(results, tmp_path / "archive", date="2026-11-26")
    second = archive_results(results, tmp_path / "archive", date="2026-11-26", label="run2")
    assert second.name == "synthgpu-2026-11-26-run2"
    with pytest.raises(SystemExit, match="letters and digits"):
        archive_results(results, tmp_path / "archive", date="2026-11-26", label="a/b")
    sources = set(collect([], None, [first, second])["source"])
    assert sources == {"archived synthgpu 2026-11-26", "archived synthgpu 2026-11-26 run2"}
    order = sorted([*sources, "archived synthgpu 2026-11-27", "this run"], key=source_newest_first)
    assert order == ["this run", "archived synthgpu 2026-11-27", "archived synthgpu 2026-11-26 run2",
                     "archived synthgpu 2026-11-26"]
    assert source_title("archived synthgpu 2026-11-26 run2") == "archived (synthgpu, 2026-11-26, run2)"
