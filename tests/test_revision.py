"""pipeline.revision: another revision's kernels and ITS registry's defines, for `pipeline.bench --against`."""

import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.revision import EXPORTED, export_revision, resolve, revision_builds, variant_built_as

ROOT = Path(__file__).resolve().parents[1]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def two_commit_repo(tmp_path):
    """A git repository holding the project's kernels/, pipeline/ and config/ twice: commit A as in
    the tree, commit B with the registry's conv2 chunk changed (what a kernel A/B must pick up
    from the revision, not from the tree)."""
    repo = tmp_path / "repo"
    for d in EXPORTED:
        shutil.copytree(ROOT / d, repo / d, ignore=shutil.ignore_patterns("__pycache__"))
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "A")
    a = _git(repo, "rev-parse", "HEAD")
    reg = repo / "kernels" / "registry.py"
    text = reg.read_text()
    assert "FUSED_TC_CONV2_CHUNK = 80" in text
    reg.write_text(text.replace("FUSED_TC_CONV2_CHUNK = 80", "FUSED_TC_CONV2_CHUNK = 64"))
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "B")
    return repo, a, _git(repo, "rev-parse", "HEAD")


def test_resolve_names_a_commit_or_says_why_not(two_commit_repo):
    repo, a, b = two_commit_repo
    assert resolve("HEAD", repo) == b and resolve("HEAD~1", repo) == a
    with pytest.raises(ValueError, match="not a commit"):
        resolve("no-such-revision", repo)


def test_each_revision_builds_with_its_own_registrys_defines(two_commit_repo, tmp_path):
    repo, a, b = two_commit_repo
    names = ["fused-reuse-t2x7-fp16", "lbl-fp16", "vendor-cl", "lbl-gen", "fused-reuse-t2x7-fp16-nonsense"]
    builds = {}
    for rev in (a, b):
        root = export_revision(rev, tmp_path / "revs", repo)
        assert root.name == rev[:12]
        source = (root / "kernels" / "fused_tc.cu").read_text()
        assert source.rstrip() == _git(repo, "show", f"{rev}:kernels/fused_tc.cu")
        builds[rev] = revision_builds(root, names)
    # hand-written variants with a source only: no anchor, no generated kernel, no unknown name
    assert set(builds[a]) == set(builds[b]) == {"fused-reuse-t2x7-fp16", "lbl-fp16"}
    fa, fb = (dict(builds[r]["fused-reuse-t2x7-fp16"]["defines"]) for r in (a, b))
    assert (fa["CONV2_CHUNK"], fb["CONV2_CHUNK"]) == (80, 64)
    assert builds[b]["lbl-fp16"]["source"] == str(tmp_path / "revs" / b[:12] / "kernels" / "lbl_tc.cu")
    # commit A is the tree's registry: the same defines as the tree's
    from kernels.registry import VARIANTS

    assert builds[a]["fused-reuse-t2x7-fp16"]["defines"] == VARIANTS["fused-reuse-t2x7-fp16"].defines


def test_an_export_is_made_once_per_commit(two_commit_repo, tmp_path):
    repo, a, _ = two_commit_repo
    root = export_revision(a, tmp_path / "revs", repo)
    marker = root / "kernels" / "marker"
    marker.write_text("kept")
    assert export_revision(a, tmp_path / "revs", repo) == root and marker.read_text() == "kept"


def test_a_registry_that_does_not_import_is_reported(tmp_path):
    root = tmp_path / "broken"
    (root / "kernels").mkdir(parents=True)
    (root / "kernels" / "registry.py").write_text("raise ImportError('from an old revision')\n")
    with pytest.raises(RuntimeError, match="does not import"):
        revision_builds(root, ["lbl-fp16"])


def test_variant_built_as_swaps_the_record_and_restores_it():
    from kernels import registry

    before = registry.VARIANTS["fused-reuse-t2x7-fp16"]
    with pytest.raises(KeyError), variant_built_as("fused-reuse-t2x7-fp16", "/elsewhere/fused_tc.cu", (("X", 1),)):
        swapped = registry.variant("fused-reuse-t2x7-fp16")
        assert swapped.source == "/elsewhere/fused_tc.cu" and swapped.defines == (("X", 1),)
        assert swapped.name == before.name
        raise KeyError("the block fails")
    assert registry.VARIANTS["fused-reuse-t2x7-fp16"] is before


def test_bench_runs_each_variant_as_the_tree_and_as_the_revision_builds_it():
    from kernels import registry
    from pipeline.bench import _sides

    sides = _sides("lbl-fp16", {"lbl-fp16": {"abc": {"source": "/rev/kernels/lbl_tc.cu", "defines": (("PREC", 1),)},
                                             "PREC=2": {"source": "kernels/lbl_tc.cu", "defines": (("PREC", 2),)}}})
    assert [label for label, _ in sides] == ["lbl-fp16", "lbl-fp16@abc", "lbl-fp16@PREC=2"]
    with sides[0][1]:
        assert registry.VARIANTS["lbl-fp16"].source == "kernels/lbl_tc.cu"
    with sides[1][1]:
        assert registry.VARIANTS["lbl-fp16"].source == "/rev/kernels/lbl_tc.cu"
    with sides[2][1]:
        assert registry.VARIANTS["lbl-fp16"].define == {"PREC": 2}
    assert registry.VARIANTS["lbl-fp16"].source == "kernels/lbl_tc.cu"
    assert [label for label, _ in _sides("lbl-fp16", {})] == ["lbl-fp16"]


@pytest.mark.gpu
def test_bench_against_head_checks_and_times_both_sides(cupy_device, tmp_path):
    """The A/B end to end on the GPU: the tree's fused kernel against HEAD's, both checked against
    float64 and timed; results.json holds both sides."""
    import json

    from pipeline import bench

    rc = bench.main(["--variants", "fused-reuse-t2x7-fp16", "--batch", "16", "--checks", "1x227x227",
                     "--repeats", "5", "--rounds", "1", "--against", "HEAD", "--out", str(tmp_path)])  # fmt: skip
    res = json.loads((tmp_path / "results.json").read_text())
    labels = {r["variant"] for r in res["checks"]}
    head = resolve("HEAD")[:8]
    assert labels == {"fused-reuse-t2x7-fp16", f"fused-reuse-t2x7-fp16@{head}"}
    assert rc == 0 and all(r["passed"] for r in res["checks"])
    assert all(t[0] > 0 for t in res["us_per_image"].values()) and len(res["us_per_image"]) == 2


def test_set_parses_integer_defines_or_says_what_it_expected():
    from pipeline.revision import parse_set

    assert parse_set("WCLUSTER=1, CONV2_CHUNK=64") == {"WCLUSTER": 1, "CONV2_CHUNK": 64}
    for bad, why in [("WCLUSTER", "NAME=INTEGER"), ("1X=2", "NAME=INTEGER"), ("WCLUSTER=two", "not an integer"),
                     (" , ", "no NAME=INTEGER")]:  # fmt: skip
        with pytest.raises(ValueError, match=why):
            parse_set(bad)


def test_bench_refuses_two_kinds_of_ab_at_once():
    from pipeline import bench

    with pytest.raises(SystemExit):
        bench.main(["--variants", "lbl-fp16", "--against", "HEAD", "--set", "PREC=2"])


@pytest.mark.parametrize("sets, why", [(["WCLUSTER=1", "WCLUSTER=1"], "twice with the same values"),
                                       (["WCLUSTER=1", "WCLUSTER=one"], "not an integer")])  # fmt: skip
def test_bench_checks_every_set_before_touching_the_gpu(capsys, sets, why):
    """Several --set builds in one call (one more build each): a repeated or mistyped one is a usage
    error, on a machine without a GPU too."""
    from pipeline import bench

    args = ["--variants", "fused-reuse-t2x7-fp16"]
    for spec in sets:
        args += ["--set", spec]
    with pytest.raises(SystemExit):
        bench.main(args)
    assert why in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH")
def test_defines_with_recomputes_the_fused_tc_layout_it_changes(tmp_path):
    """--set WCLUSTER=1: the fused_tc build without clusters, its EXPECT_SMEM_BYTES recomputed (no
    mbarriers), which its static_assert accepts; nvcc builds it for plain sm_90, without multicast."""
    from kernels.registry import VARIANTS, fused_tc_smem_bytes
    from pipeline.core.nvcc import REPO, nvcc_command
    from pipeline.revision import defines_with

    d = dict(defines_with("fused-reuse-t2x5-tf32", {"WCLUSTER": 1}))
    assert d["WCLUSTER"] == 1 and d["EXPECT_SMEM_BYTES"] == fused_tc_smem_bytes((2, 5), "reuse", 3, "tf32", 1)
    assert d["EXPECT_SMEM_BYTES"] < VARIANTS["fused-reuse-t2x5-tf32"].define["EXPECT_SMEM_BYTES"]
    flags = [f"-D{k}={v}" for k, v in d.items()]
    r = subprocess.run(nvcc_command(REPO / "kernels/fused_tc.cu", flags, "sm_90", tmp_path / "k.cubin"),
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    # an override of another source's define only replaces it
    assert dict(defines_with("lbl-fp16", {"PREC": 2})) == {"PREC": 2}
    assert defines_with("fused-reuse-t2x7-fp16", {"EXPECT_SMEM_BYTES": 5})[-1] == ("EXPECT_SMEM_BYTES", 5)


@pytest.mark.gpu
def test_bench_set_runs_the_tree_with_other_defines(cupy_device, tmp_path):
    """--set WCLUSTER=1 end to end on the GPU: the clustered fused kernel and the same kernel without
    clusters (and so on mma.sync: wgmma reads the cluster ring), both checked against float64 (at an
    odd batch: the cluster's spare block) and timed."""
    import json

    from pipeline import bench

    rc = bench.main(["--variants", "fused-reuse-t2x7-fp16", "--batch", "16", "--checks", "3x227x227",
                     "--repeats", "5", "--rounds", "1", "--set", "WCLUSTER=1,CONV2_WGMMA=0", "--out", str(tmp_path)])  # fmt: skip
    res = json.loads((tmp_path / "results.json").read_text())
    assert {r["variant"] for r in res["checks"]} == {"fused-reuse-t2x7-fp16", "fused-reuse-t2x7-fp16@WCLUSTER=1,CONV2_WGMMA=0"}
    assert rc == 0 and all(r["passed"] for r in res["checks"]) and len(res["us_per_image"]) == 2


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["fused-reuse-t4x7-fp16", "fused-reuse-t4x7-bf16", "fused-reuse-t2x5-tf32"])
def test_fused_tc_knobs_other_values_still_compute_the_block(cupy_device, tmp_path, name):
    """The fused kernel's knobs at the values the registry does not build (perf-notes steps 28d, 28e,
    29, 30 and 31): conv2 on the other mma (wgmma for TF32, mma.sync for 16 bits), the ring's
    cluster-scope synchronisation of step 28, both, conv1's patch load as before step 31 (2 rows in
    flight, no L2 prefetch of the next chunk's rows), the patch in 16-byte chunks, and at 16 bits
    conv1 over the space-to-depth input on wgmma (two ring depths), in one pipeline.bench call,
    checked against float64 at an odd batch (the cluster's spare block) and an odd size."""
    import json

    from kernels.registry import VARIANTS
    from pipeline import bench

    other_mma = f"CONV2_WGMMA={1 - VARIANTS[name].define['CONV2_WGMMA']}"
    sets = [other_mma, "CONV2_START_CLUSTER_SYNC=1,RING_WAIT_CLUSTER=1", f"{other_mma},CONV2_START_CLUSTER_SYNC=1,RING_WAIT_CLUSTER=1",
            "CONV1_PATCH_PREFETCH=0,CONV1_PATCH_RB=2", "CONV1_PATCH_VEC=1,CONV1_PATCH_RB=4"]  # fmt: skip
    if not name.endswith("tf32"):
        sets += ["CONV1_S2D=1,CONV1_PATCH_RB=2", "CONV1_S2D=1,CONV1_S2D_STAGES=5,CONV1_PATCH_RB=4"]
    args = ["--variants", name, "--checks", "3x231x199;5x227x227", "--no-time", "--out", str(tmp_path)]
    for spec in sets:
        args += ["--set", spec]
    rc = bench.main(args)
    res = json.loads((tmp_path / "results.json").read_text())
    assert {r["variant"] for r in res["checks"]} == {name} | {f"{name}@{spec}" for spec in sets}
    assert rc == 0 and len(res["checks"]) == 2 * (1 + len(sets)) and all(r["passed"] for r in res["checks"])



@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH")
def test_bench_prebuild_fills_the_cache_the_run_time_builds_read(tmp_path, monkeypatch):
    """--prebuild --cubin-cache DIR, with no GPU: nvcc builds every run-time sm_90a build of the call
    (the tree's side and the --set side, each with its PHASE_TIMING twin for --phases) into DIR, and
    at run time kernels.api asks nvcc_cubin for exactly those files (same source, defines, target),
    so the GPU call finds them there instead of compiling. lbl-fp16 compiles with NVRTC: none. A
    --set of the registry's own value is the tree's build: nothing more (built once, not twice at
    once into the same file)."""
    from kernels.registry import VARIANTS
    from pipeline import bench
    from pipeline.core import gpu
    from pipeline.revision import defines_with
    from pipeline.stages.phases import PHASE_DEFINE

    cache = tmp_path / "cubins"
    name = "fused-reuse-t2x7-fp16"
    monkeypatch.setenv(gpu.CUBIN_CACHE_ENV, str(cache))  # first, so the teardown undoes bench's setting too
    rc = bench.main(["--variants", f"{name},lbl-fp16", "--set", "CONV2_WGMMA=0", "--phases", "--prebuild",
                     "--cubin-cache", str(cache)])  # fmt: skip
    assert rc == 0 and len(list(cache.glob("fused_tc-*.cubin"))) == 4
    assert bench.main(["--variants", name, "--set", "CONV2_WGMMA=1", "--prebuild", "--cubin-cache", str(cache)]) == 0
    assert len(list(cache.iterdir())) == 4
    stamps = {p: p.stat().st_mtime_ns for p in cache.iterdir()}
    v = VARIANTS[name]
    # what compile_module passes for each side (Forward: the record's defines + make_forward's)
    asked = [v.defines, defines_with(name, {"CONV2_WGMMA": 0})]
    asked += [d + PHASE_DEFINE for d in asked]
    assert {gpu.nvcc_cubin(v.source, d, "sm_90a") for d in asked} == set(stamps)
    assert {p: p.stat().st_mtime_ns for p in cache.iterdir()} == stamps  # found, not rebuilt


def test_bench_prebuild_needs_a_cache_and_no_revision(capsys):
    from pipeline import bench

    for args in (["--prebuild"], ["--prebuild", "--cubin-cache", "/tmp/x", "--against", "HEAD"]):
        with pytest.raises(SystemExit):
            bench.main(["--variants", "lbl-fp16", *args])
        assert "--prebuild fills --cubin-cache DIR" in capsys.readouterr().err


@pytest.mark.gpu
def test_bench_phases_read_the_prebuilt_cache(cupy_device, tmp_path, monkeypatch):
    """--phases end to end: the fused build and its --set side, each with its phases (from the
    PHASE_TIMING twin, prebuilt into the cache first, as on a machine without a GPU), which sum to
    the timed median."""
    import json

    from pipeline import bench

    cache, name = tmp_path / "cubins", "fused-reuse-t2x7-fp16"
    monkeypatch.setenv("FUSED_LAYER_CUBIN_CACHE", str(cache))  # undone at teardown, with bench's setting
    common = ["--variants", name, "--set", "CONV2_WGMMA=0", "--phases", "--cubin-cache", str(cache)]
    assert bench.main([*common, "--prebuild"]) == 0
    built = {p: p.stat().st_mtime_ns for p in cache.iterdir()}
    rc = bench.main([*common, "--batch", "16", "--checks", "3x227x227", "--repeats", "5", "--rounds", "1",
                     "--out", str(tmp_path)])  # fmt: skip
    res = json.loads((tmp_path / "results.json").read_text())
    assert rc == 0 and set(res["phases"]) == {name, f"{name}@CONV2_WGMMA=0"}
    for rec in res["phases"].values():
        assert {"conv1", "conv2", "pool2"} <= set(rec)
        assert sum(v for k, v in rec.items() if k != "total") == pytest.approx(rec["total"], rel=1e-6)
    assert {p: p.stat().st_mtime_ns for p in cache.iterdir()} == built  # nothing compiled again
