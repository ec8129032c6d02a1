"""Archiving a run: text results only, never overwritten, read back labelled as archived."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from analysis.aggregate import tidy_tables
from analysis.archive import archive_results

REPO = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).resolve().parent / "data" / "results_fixture"


@pytest.fixture
def results(tmp_path):
    """A results tree in the workflow's layout (the synthetic fixture) plus binary outputs."""
    res = tmp_path / "results"
    shutil.copytree(FIXTURE / "synthgpu", res / "synthgpu")
    shutil.copytree(FIXTURE / "model", res / "model")
    shutil.copy(FIXTURE / "plan.csv", res / "plan.csv")
    shutil.copytree(FIXTURE / "build", res / "build")
    (res / "build" / "sm_90" / "lbl.cubin").write_bytes(b"\x7fELF")
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
    tidy = tidy_tables([], None, [dest])["tidy"]
    assert not tidy.empty and (tidy["source"] == "archived synthgpu 2026-11-26").all()
    assert tidy["model_dram_bytes_per_image"].notna().any()
    assert tidy.loc[tidy["strategy"] != "vendor", "n_kernels"].notna().all()  # the build reports came along


def test_a_second_run_the_same_day_gets_a_label_and_counts_as_newer(results, tmp_path):
    from analysis.sources import source_newest_first, source_title

    first = archive_results(results, tmp_path / "archive", date="2026-11-26")
    second = archive_results(results, tmp_path / "archive", date="2026-11-26", label="run2")
    assert second.name == "synthgpu-2026-11-26-run2"
    with pytest.raises(SystemExit, match="letters and digits"):
        archive_results(results, tmp_path / "archive", date="2026-11-26", label="a/b")
    sources = set(tidy_tables([], None, [first, second])["tidy"]["source"])
    assert sources == {"archived synthgpu 2026-11-26", "archived synthgpu 2026-11-26 run2"}
    order = sorted([*sources, "archived synthgpu 2026-11-27", "this run"], key=source_newest_first)
    assert order == ["this run", "archived synthgpu 2026-11-27", "archived synthgpu 2026-11-26 run2",
                     "archived synthgpu 2026-11-26"]
    assert source_title("archived synthgpu 2026-11-26 run2") == "archived (synthgpu, 2026-11-26, run2)"


def test_archives_of_one_day_sort_by_when_they_were_measured(results, tmp_path, monkeypatch):
    """Within a day the provenance timestamp decides, not the label's spelling: a later run labelled
    "aaa" is newer than an earlier "zzz"; an archive without a timestamp sorts after both."""
    import json

    from analysis import sources

    root = tmp_path / "archive"
    for label, stamp in (("zzz", "2026-11-26T09:00:00+00:00"), ("aaa", "2026-11-26T15:30:00+00:00"), ("mmm", None)):
        dest = archive_results(results, root, date="2026-11-26", label=label)
        for prov in dest.glob("*/provenance.json"):
            data = json.loads(prov.read_text())
            data["timestamp_utc"] = stamp
            prov.write_text(json.dumps(data))
    monkeypatch.setattr(sources, "ARCHIVE_ROOT", root)
    sources.archive_time_utc.cache_clear()
    try:
        assert sources.archive_time_utc("synthgpu", "2026-11-26", "aaa") == "2026-11-26T15:30:00+00:00"
        labels = [f"archived synthgpu 2026-11-26 {x}" for x in ("zzz", "mmm", "aaa")]
        order = sorted([*labels, "archived synthgpu 2026-11-27", "this run"], key=sources.source_newest_first)
        assert order == ["this run", "archived synthgpu 2026-11-27", "archived synthgpu 2026-11-26 aaa",
                         "archived synthgpu 2026-11-26 zzz", "archived synthgpu 2026-11-26 mmm"]  # fmt: skip
    finally:
        sources.archive_time_utc.cache_clear()


def test_the_projects_newest_archive_is_the_latest_measured():
    """The report's fallback (no GPU here) shows the archive measured last, whatever its label."""
    import json

    from analysis.sources import ARCHIVE_ROOT, archive_source, source_newest_first

    dirs = [d for d in ARCHIVE_ROOT.iterdir() if list(d.glob("*/provenance.json"))]
    newest = sorted((archive_source(d) for d in dirs), key=source_newest_first)[0]
    stamp = lambda d: max(json.loads(p.read_text())["timestamp_utc"] for p in d.glob("*/provenance.json"))  # noqa: E731
    latest = max(dirs, key=stamp)
    assert newest == archive_source(latest)


# ---------------------------------------------------------------- migration of schema-1 archives


def flat(data, prefix=()) -> dict:
    """Every leaf of a JSON document by its path."""
    if isinstance(data, dict):
        return {k: v for key, val in data.items() for k, v in flat(val, (*prefix, key)).items()}
    if isinstance(data, list):
        return {k: v for i, val in enumerate(data) for k, v in flat(val, (*prefix, i)).items()}
    return {prefix: data}


def write_v1_archive(dest: Path, exact_r: bool | None) -> Path:
    """The fixture's archive as schema 1 wrote it: no schema_version nor record fields, build reports
    inside the GPU directory (without -D flags before EXACT_R), verify.json per batch, the old
    ceilings/provenance spellings, and a plan without the record and executed-work columns."""
    src = FIXTURE / "archive" / "synthgpu-2026-11-20"
    shutil.copytree(src, dest)
    record = ("schema_version", "group", "strategy", "tile", "precision")
    for f in dest.rglob("*.json"):
        data = {k: v for k, v in json.loads(f.read_text()).items() if k not in record}
        f.write_text(json.dumps(data, indent=1))
    g = dest / "synthgpu"
    for f in sorted((dest / "build" / "sm_90").glob("*.json")):
        data = json.loads(f.read_text())
        if f.stem.startswith("fused") and exact_r is not None:
            data["defines"] = {"TILE_Y": 4, "TILE_X": 4, "REUSE": 1, "EXACT_R": int(exact_r)}
        (g / "build").mkdir(exist_ok=True)
        (g / "build" / f.name).write_text(json.dumps(data, indent=1))
        f.unlink()
    shutil.rmtree(dest / "build")
    for v in ("lbl", "fused-reuse-t4"):
        (g / "alexnet" / v / "verify.json").rename(g / "alexnet" / v / "b128" / "verify.json")
    ceil = json.loads((g / "ceilings.json").read_text())
    ceil = {{"fp32_flop_per_s": "fp32_flops_per_s", "l2_bytes": "datasheet_l2_cache_bytes"}.get(k, k): v
            for k, v in ceil.items()}
    (g / "ceilings.json").write_text(json.dumps(ceil, indent=1))
    prov = json.loads((g / "provenance.json").read_text())
    prov["l2_cache_bytes"] = prov.pop("l2_bytes")
    (g / "provenance.json").write_text(json.dumps(prov, indent=1))
    plan = pd.read_csv(dest / "plan.csv", dtype={"tile": str})
    plan = plan.drop(columns=["precision", "kernel_padding_macs_per_image", "kernel_counted_flops_per_image",
                              "largest_intermediate_bytes_per_image"])
    plan["tile"] = plan["tile"].map(lambda t: f"{float(t)}" if isinstance(t, str) else t)  # "4.0"
    plan[["network", "group", "variant", *[c for c in plan.columns if c not in ("network", "group", "variant")]]].to_csv(
        dest / "plan.csv", index=False)
    return dest


@pytest.mark.parametrize("exact_r", [None, False, True], ids=["no-defines", "EXACT_R=0", "EXACT_R=1"])
def test_migrate_a_schema_1_archive(tmp_path, exact_r):
    from analysis.archive import migrate
    from analysis.aggregate import tidy_tables
    from analysis.collect import SchemaError, collect
    from kernels.work import fused_work

    v1 = write_v1_archive(tmp_path / "v1" / "synthgpu-2026-11-20", exact_r)
    before = {p.relative_to(v1).as_posix(): json.loads(p.read_text()) for p in v1.rglob("*.json")}
    plan_before = pd.read_csv(v1 / "plan.csv")
    with pytest.raises(SchemaError, match="--migrate"):
        collect([], None, [v1])
    changed = migrate(v1)
    assert len(changed) == len(before) + 1  # every JSON and plan.csv
    assert migrate(v1) == []  # once

    # the layout of today: builds beside the GPU directory, one verify.json per variant
    g = v1 / "synthgpu"
    assert not (g / "build").exists() and sorted(p.name for p in (v1 / "build" / "sm_90").iterdir()) == [
        "fused-reuse-t4.json", "lbl.json"]
    assert not list(g.glob("*/*/b*/verify.json")) and (g / "alexnet" / "lbl" / "verify.json").exists()
    moved = {"synthgpu/build/lbl.json": "build/sm_90/lbl.json",
             "synthgpu/build/fused-reuse-t4.json": "build/sm_90/fused-reuse-t4.json",
             "synthgpu/alexnet/lbl/b128/verify.json": "synthgpu/alexnet/lbl/verify.json",
             "synthgpu/alexnet/fused-reuse-t4/b128/verify.json": "synthgpu/alexnet/fused-reuse-t4/verify.json"}
    renamed = {"fp32_flops_per_s": "fp32_flop_per_s", "datasheet_l2_cache_bytes": "l2_bytes", "l2_cache_bytes": "l2_bytes"}
    for old_path, data in before.items():
        after = json.loads((v1 / moved.get(old_path, old_path)).read_text())
        new_leaves = flat(after)
        for key, value in flat(data).items():  # measured numbers unchanged, under today's spelling
            key = (renamed.get(key[0], key[0]), *key[1:])
            assert new_leaves[key] == value, (old_path, key)
        if not old_path.endswith(("ceilings.json", "provenance.json")):
            name = Path(moved.get(old_path, old_path))
            variant = name.stem if name.parent.parent.name == "build" else [p for p in name.parts if "-" in p or p == "lbl"][0]
            fused = variant != "lbl"
            assert after["schema_version"] == 2 and after["variant"] == variant
            assert (after["network"], after["group"], after["precision"]) == ("alexnet", "front", "fp32")
            assert (after["strategy"], after["tile"]) == (("reuse", "4") if fused else ("lbl", None))
    assert "exact_slots" not in json.loads((v1 / "build" / "sm_90" / "lbl.json").read_text())
    build = json.loads((v1 / "build" / "sm_90" / "fused-reuse-t4.json").read_text())
    assert build["exact_slots"] is bool(exact_r)

    # the plan: the model numbers it had, plus the record and the executed work of the archived build
    plan = pd.read_csv(v1 / "plan.csv", dtype={"tile": str})
    for c in plan_before.columns:
        if c != "tile":
            assert plan[c].equals(plan_before[c]), c
    assert list(plan["tile"].fillna("")) == ["", "4"] and set(plan["precision"]) == {"fp32"}
    fused = plan.set_index("variant").loc["fused-reuse-t4"]
    w = fused_work(4, "reuse", exact_slots=bool(exact_r))
    assert fused["kernel_counted_flops_per_image"] == w.flops and fused["kernel_padding_macs_per_image"] == w.padding_macs
    assert fused["largest_intermediate_bytes_per_image"] == 96 * 55 * 55 * 4

    # and the collectors read it
    t = tidy_tables([], None, [v1])
    assert set(t["tidy"]["strategy"]) == {"lbl", "reuse"} and t["tidy"]["verify_passed"].all()
    assert t["ceilings"]["fp32_flop_per_s"].notna().all() and t["ceilings"]["l2_bytes"].eq(50 * 2**20).all()


def test_the_kept_archives_are_migrated(tmp_path):
    """Every archive in reports/archive reads under the current schema (migrated once, committed):
    migrating a copy again changes nothing."""
    from analysis.archive import migrate
    from analysis.sources import archive_source

    archives = sorted(p for p in (REPO / "reports" / "archive").iterdir() if p.is_dir())
    t = tidy_tables([], None, archives)["tidy"]
    assert set(t["source"]) == {archive_source(a) for a in archives}
    assert t["strategy"].notna().all() and t["precision"].isin(["fp32", "tf32", "fp16", "bf16"]).all()
    # the executed-work count walks fused.cu (FP32); the tensor-core kernel has none yet
    fused = t[t["strategy"].isin(["reuse", "recompute"]) & (t["impl"] != "gen")]  # hand-written fused.cu / fused_tc.cu
    assert fused[fused["precision"] == "fp32"]["kernel_counted_flops_per_image"].notna().all()
    assert fused[fused["precision"] != "fp32"]["kernel_counted_flops_per_image"].isna().all()
    for a in archives:
        assert all(json.loads(p.read_text())["schema_version"] == 2 for p in a.rglob("*.json")), a.name
        copy = shutil.copytree(a, tmp_path / a.name)
        assert migrate(copy) == [], a.name
