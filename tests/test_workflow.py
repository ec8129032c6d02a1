"""The real Snakemake on the real Snakefile: DAG, lint, format, config errors, a model-only run to
the HTML report, and rerunning one target alone."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TEST_CONFIG = ROOT / "tests" / "data" / "config.yaml"


def smk(*args, cwd, env=None):
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), *args],
        cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})},
    )  # fmt: skip


def planned_jobs(dry_run_stdout: str) -> dict[str, int]:
    """Snakemake's dry-run job-stats table: rule -> count."""
    table = re.search(r"Job stats:\n(.*?)\n\n", dry_run_stdout, re.S)
    assert table, dry_run_stdout
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table.group(1), re.M)}


def test_dag_builds(tmp_path):
    r = smk("-d", str(tmp_path), "--configfile", str(TEST_CONFIG), "-n", cwd=tmp_path,
            env={"FUSED_LAYER_NO_GPU": "1"})  # fmt: skip
    assert r.returncode == 0, r.stderr
    jobs = planned_jobs(r.stdout)
    assert jobs["model"] == 2 and jobs["paper"] == 1
    assert "verify" not in jobs and "time" not in jobs  # no GPU: measurement drops out of the DAG


def test_lint_only_expected():
    titles = set(re.findall(r"^\s+\* (.+):$", smk("--lint", cwd=ROOT).stderr, re.M))
    assert titles <= {"Specify a conda environment or container for each rule."}


@pytest.mark.skipif(shutil.which("snakefmt") is None and not (Path(sys.executable).parent / "snakefmt").exists(),
                    reason="snakefmt not installed")  # fmt: skip
def test_snakefile_is_formatted():
    snakefmt = shutil.which("snakefmt") or str(Path(sys.executable).parent / "snakefmt")
    r = subprocess.run([snakefmt, "--check", str(ROOT / "Snakefile")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(
    "bad, expected",
    [
        ("kernels: {network: alexnet, group: front, batches: [0]}",
         "config kernels.batches.0: 0 is less than the minimum of 1"),
        ("tiles: 3", "config unknown key 'tiles'"),
        ("kernels: {network: alexnet, group: front, batches: [1], tile_sizes: [99]}",
         "kernels.tile_sizes: [99] not compiled"),
        ("networks: {alexnet: {groups: {front: [conv1, pool2]}, tile_sizes: [20]}}",
         "networks.alexnet.tile_sizes: [20] cannot tile the 13x13 output of group front; allowed: 1..13"),
    ],
)  # fmt: skip
def test_bad_config_stops_before_any_work(tmp_path, bad, expected):
    (tmp_path / "bad.yaml").write_text(bad + "\n")
    r = smk("-d", str(tmp_path), "--configfile", str(tmp_path / "bad.yaml"), "--cores", "1", cwd=tmp_path)
    assert r.returncode != 0
    assert expected in r.stderr, r.stderr
    assert not (tmp_path / "results").exists()


def test_script_rules_have_no_future_imports():
    """Snakemake's script: directive prepends a preamble, so a `from __future__` line breaks it."""
    scripts = re.findall(r'^\s+script:\n\s+"([^"]+)"', (ROOT / "Snakefile").read_text(), re.M)
    assert len(scripts) >= 10
    for script in scripts:
        assert "from __future__" not in (ROOT / script).read_text(), script


@pytest.fixture(scope="module")
def model_only_run(tmp_path_factory):
    """One model-only run of the workflow up to the HTML report, shared by the tests below."""
    work = tmp_path_factory.mktemp("run")
    env = {"FUSED_LAYER_NO_GPU": "1"}
    run = smk("-d", str(work), "--configfile", str(TEST_CONFIG), "--cores", "2", cwd=work, env=env)
    assert run.returncode == 0, run.stderr[-4000:]
    report = smk("-d", str(work), "--configfile", str(TEST_CONFIG), "--report", "report.html", cwd=work,
                 env=env)  # fmt: skip
    assert report.returncode == 0, report.stderr[-4000:]
    return work


def test_model_only_run_makes_report(model_only_run):
    work = model_only_run
    html = (work / "report.html").read_text(errors="replace")
    assert len(html) > 50_000
    for name in ("pyramids.csv", "dse.csv"):
        assert (work / "results" / "model" / "alexnet" / name).stat().st_size > 0
    assert (work / "results" / "model" / "paper_comparison.csv").exists()
    assert (work / "results" / "tidy.csv").exists()


def test_rerun_one_target_alone(model_only_run):
    """--forcerun on one target plans that job (and what consumes it), not the whole workflow."""
    work = model_only_run
    target = "results/model/vgg_e/pyramids.csv"
    r = smk("-d", str(work), "--configfile", str(TEST_CONFIG), "-n", target, "--forcerun", "model",
            cwd=work, env={"FUSED_LAYER_NO_GPU": "1"})  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert planned_jobs(r.stdout) == {"model": 1, "total": 1}
    r = smk("-d", str(work), "--configfile", str(TEST_CONFIG), "-n", cwd=work, env={"FUSED_LAYER_NO_GPU": "1"})
    assert "Nothing to be done" in r.stdout + r.stderr


def test_without_nvcc_the_build_stage_drops_out(tmp_path):
    """No nvcc: the run says so and plans no build jobs (the API falls back to NVRTC)."""
    dirs = [d for d in os.environ["PATH"].split(os.pathsep) if d and not (Path(d) / "nvcc").exists()]
    r = smk("-d", str(tmp_path), "--configfile", str(TEST_CONFIG), "-n", cwd=tmp_path,
            env={"FUSED_LAYER_NO_GPU": "1", "PATH": os.pathsep.join(dirs)})  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "nvcc not on PATH" in r.stderr
    assert "build" not in planned_jobs(r.stdout)


def test_editing_a_network_file_reruns_its_model(tmp_path):
    """config/networks/<name>.yaml is an input of rule model: an edit plans that model job again.

    Snakemake 9 compares checksums of small inputs, so a newer mtime alone (os.utime) triggers
    nothing; the test appends a YAML comment to the real file and restores bytes and times after.
    """
    env = {"FUSED_LAYER_NO_GPU": "1"}
    target = "results/model/vgg_e/pyramids.csv"
    args = ("-d", str(tmp_path), "--configfile", str(TEST_CONFIG))
    run = smk(*args, "--cores", "1", target, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr[-4000:]
    r = smk(*args, "-n", target, cwd=tmp_path, env=env)
    assert "Nothing to be done" in r.stdout + r.stderr
    network = ROOT / "config" / "networks" / "vgg_e.yaml"
    text, times = network.read_bytes(), network.stat()
    try:
        network.write_bytes(text + b"# an edit that changes nothing the model reads\n")
        r = smk(*args, "-n", target, cwd=tmp_path, env=env)
    finally:
        network.write_bytes(text)
        os.utime(network, ns=(times.st_atime_ns, times.st_mtime_ns))
    assert r.returncode == 0, r.stderr
    assert planned_jobs(r.stdout) == {"model": 1, "total": 1}
    assert f"reason: Updated input files: {network}" in r.stdout


def make_fake_gpu(where: Path) -> dict:
    """Environment in which the workflow sees one H200: an `nvidia-smi` on PATH that answers the
    query of pipeline.core.gpus.detect_gpus, an empty `cupy` package so that the Snakefile's CuPy
    check passes (a dry run imports nothing of it), and an `nvcc` so that build jobs are planned."""
    bin_dir, py_dir = where / "fake-bin", where / "fake-py"
    (py_dir / "cupy").mkdir(parents=True)
    (py_dir / "cupy" / "__init__.py").write_text("")
    bin_dir.mkdir()
    for name, text in (("nvidia-smi", "echo '0, NVIDIA H200, GPU-00000000-0000-0000-0000-000000000000, 9.0'"),
                       ("nvcc", "exit 1")):  # fmt: skip
        (bin_dir / name).write_text(f"#!/bin/sh\n{text}\n")
        (bin_dir / name).chmod(0o755)
    path = os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")])
    pythonpath = os.pathsep.join(p for p in (str(py_dir), os.environ.get("PYTHONPATH")) if p)
    return {"PATH": path, "PYTHONPATH": pythonpath, "FUSED_LAYER_NO_GPU": ""}


@pytest.fixture
def fake_gpu(tmp_path):
    return make_fake_gpu(tmp_path)


def stderr_lines(r) -> list[str]:
    """Snakemake's stderr without its two notices about the profile and the config files."""
    return [l for l in r.stderr.splitlines()
            if l.strip() and not l.startswith(("Using workflow specific profile", "Config file "))]  # fmt: skip


def test_a_gpu_target_for_another_card_stops_with_one_line(tmp_path, fake_gpu):
    """The README's rerun example on a machine with another card: one line naming both cards and
    the path on the card present, no DAG, no job."""
    work = tmp_path / "work"
    asked = "results/h100-80gb-hbm3/alexnet/fused-reuse-t2/b1/time.json"
    r = smk("-d", str(work), "--configfile", str(TEST_CONFIG), "--cores", "1", asked, "--forcerun", "time",
            cwd=tmp_path, env=fake_gpu)  # fmt: skip
    assert r.returncode != 0
    assert stderr_lines(r) == [
        f"{asked} names GPU h100-80gb-hbm3, but this machine has h200: "
        "ask for results/h200/alexnet/fused-reuse-t2/b1/time.json"
    ], r.stderr
    assert not (work / "results").exists()
    # the path it names works: verify and time of that variant (after its build)
    r = smk("-d", str(work), "--configfile", str(TEST_CONFIG), "-n", "results/h200/alexnet/fused-reuse-t2/b1/time.json",
            "--forcerun", "time", cwd=tmp_path, env=fake_gpu)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert planned_jobs(r.stdout) == {"build": 1, "verify": 1, "time": 1, "total": 3}


def test_a_gpu_target_without_a_gpu_stops_with_one_line(tmp_path):
    asked = "results/h100-80gb-hbm3/alexnet/fused-reuse-t2/b1/time.json"
    r = smk("-d", str(tmp_path), "--configfile", str(TEST_CONFIG), "-n", asked, "--forcerun", "time",
            cwd=tmp_path, env={"FUSED_LAYER_NO_GPU": "1"})  # fmt: skip
    assert r.returncode != 0
    assert stderr_lines(r) == [
        f"{asked} needs a GPU (h100-80gb-hbm3), and this machine has none (FUSED_LAYER_NO_GPU is set); "
        "model-only targets still run"
    ], r.stderr
    assert "Building DAG" not in r.stdout + r.stderr


def test_a_gpu_target_at_an_unconfigured_batch_stops_with_one_line(tmp_path, fake_gpu):
    r = smk("-d", str(tmp_path), "--configfile", str(TEST_CONFIG), "-n",
            "results/h200/alexnet/lbl/b64/time.json", cwd=tmp_path, env=fake_gpu)  # fmt: skip
    assert r.returncode != 0
    assert stderr_lines(r) == ["results/h200/alexnet/lbl/b64/time.json: batch 64 is not in kernels.batches; allowed: 1"]


@pytest.fixture(scope="module")
def touched_gpu_run(tmp_path_factory):
    """Every file of a full run on a (fake) H200, made empty and recorded by `--touch`, which stores
    each job's params and input checksums as a real run does; the dry runs below then see what an
    edit would rerun. Returns (workdir, env)."""
    where = tmp_path_factory.mktemp("touched")
    env, work = make_fake_gpu(where), where / "work"
    args = ("-d", str(work), "--configfile", str(TEST_CONFIG))
    r = smk(*args, "-n", "--forceall", cwd=where, env=env)
    assert r.returncode == 0, r.stderr
    outputs = {f for line in re.findall(r"^\s+output: (.+)$", r.stdout, re.M) for f in line.split(", ")}
    assert any("/time.json" in f for f in outputs) and any(f.endswith(".cubin") for f in outputs)
    for f in outputs:
        (work / f).parent.mkdir(parents=True, exist_ok=True)
        (work / f).write_text("")
    r = smk(*args, "--touch", "--forceall", "--cores", "1", cwd=where, env=env)
    assert "steps (100%) done" in r.stderr, r.stderr  # (then onsuccess fails on the empty tidy.csv)
    r = smk(*args, "-n", cwd=where, env=env)
    assert "Nothing to be done" in r.stdout + r.stderr, r.stdout
    return work, env


# After a run measured results, what follows a changed result: aggregation, figures, the run's target.
DOWNSTREAM = {"aggregate": 1, "measured_figures": 1, "tables": 1, "all": 1}
VARIANTS = 3  # lbl, fused-reuse-t2, fused-recompute-t2 in tests/data/config.yaml, at batch 1


@pytest.mark.parametrize(
    "change, planned",
    [
        ({"timing": {"repeats": 7}}, {"time": VARIANTS}),
        ({"profile": {"clock_control": "base"}}, {"profile": VARIANTS}),
        ({"phases": {"launches": 9}}, {"phases": VARIANTS}),
        # a new tolerance re-verifies, and a new verify.json remeasures what it guards
        ({"verify": {"rtol": {"fp32": 2.0e-4}}}, {"verify": VARIANTS, "time": VARIANTS, "profile": VARIANTS,
                                                  "phases": VARIANTS}),
        ({"verify": {"rtol": {"fp16": 3.0e-3}}}, {}),  # no fp16 variant in this config: nothing
        ({"model": {"bytes_per_value": 2}}, {"model": 2, "plan": 1, "model_figures": 2}),
    ],
    ids=["timing", "profile", "phases", "verify", "verify-other-precision", "model"],
)  # fmt: skip
def test_a_changed_config_section_reruns_its_rules(touched_gpu_run, tmp_path, change, planned):
    """Each config section is a param of the rules that read it (Snakemake 9's default rerun
    triggers compare params and input checksums): a changed section plans those jobs and what
    consumes their files, nothing else (provenance's command line is not compared)."""
    work, env = touched_gpu_run
    (tmp_path / "change.yaml").write_text(yaml.safe_dump(change))
    r = smk("-d", str(work), "--configfile", str(TEST_CONFIG), str(tmp_path / "change.yaml"), "-n",
            "--rerun-triggers", "params", "input", cwd=tmp_path, env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    if not planned:
        assert "Nothing to be done" in r.stdout + r.stderr, r.stdout
        return
    downstream = DOWNSTREAM if set(planned) - {"model", "plan", "model_figures"} else {"all": 1}
    if "plan" in planned:
        downstream = {**DOWNSTREAM, **downstream}
    expected = {**downstream, **planned}
    assert planned_jobs(r.stdout) == {**expected, "total": sum(expected.values())}


def test_a_config_value_on_the_command_line_reruns_its_rules(touched_gpu_run, tmp_path):
    """The same through --config (which Snakemake reads as strings: a string-valued key)."""
    work, env = touched_gpu_run
    r = smk("-d", str(work), "--configfile", str(TEST_CONFIG), "-n", "--config", "profile={cache_control: none}",
            cwd=tmp_path, env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    expected = {**DOWNSTREAM, "profile": VARIANTS}
    assert planned_jobs(r.stdout) == {**expected, "total": sum(expected.values())}


def test_editing_a_kernel_source_rebuilds_its_variants_only(touched_gpu_run, tmp_path):
    """kernels/lbl.cu is an input of lbl's build alone: an edit rebuilds lbl, re-verifies and
    remeasures it; the fused variants (kernels/fused.cu and common.cuh) stay. The real file is
    edited (Snakemake compares small inputs by checksum) and restored, bytes and times."""
    work, env = touched_gpu_run
    source = ROOT / "kernels" / "lbl.cu"
    text, times = source.read_bytes(), source.stat()
    try:
        source.write_bytes(text + b"// an edit\n")
        r = smk("-d", str(work), "--configfile", str(TEST_CONFIG), "-n", cwd=tmp_path, env=env)
    finally:
        source.write_bytes(text)
        os.utime(source, ns=(times.st_atime_ns, times.st_mtime_ns))
    assert r.returncode == 0, r.stderr
    expected = {**DOWNSTREAM, "build": 1, "verify": 1, "time": 1, "profile": 1, "phases": 1}
    assert planned_jobs(r.stdout) == {**expected, "total": sum(expected.values())}
    assert f"reason: Updated input files: {source}" in r.stdout


@pytest.mark.parametrize("full", [False, True], ids=["default", "full"])
def test_default_run_profiles_two_batches_and_full_sweep_all(tmp_path, fake_gpu, full):
    """The default config (config/config.yaml) times every variant at every batch, one job per
    variant, and runs Nsight Compute at profile.batches only; config/full.yaml adds precisions,
    tiles and anchors, and profiles every batch."""
    from pipeline.config import load_config
    from pipeline.stages.plan import kernel_variants, profile_batches, time_groups, variant_batches

    config = load_config(ROOT / "config" / "config.yaml")
    extra = ("--configfile", str(ROOT / "config" / "full.yaml")) if full else ()
    if full:  # what Snakemake does with a second config file: section by section
        for section, values in yaml.safe_load((ROOT / "config" / "full.yaml").read_text()).items():
            config[section].update(values)
    variants, profiled_batches = kernel_variants(config), profile_batches(config)
    r = smk("-d", str(tmp_path), *extra, "-n", cwd=tmp_path, env=fake_gpu)
    assert r.returncode == 0, r.stderr
    jobs = planned_jobs(r.stdout)
    # one time rule per set of batches: time (kernels.batches), time_<network>_<group> per generated entry
    assert {rule: jobs[rule] for rule, _, _, _ in time_groups(config)} == {
        rule: len(names) for rule, _, names, _ in time_groups(config)}  # fmt: skip
    assert sum(jobs[rule] for rule, _, _, _ in time_groups(config)) == len(variants)
    assert jobs["profile"] == sum(len(profile_batches(config, v)) for v in variants)
    assert len(re.findall(r"^\s+output: .*/b\d+/time.json", r.stdout, re.M)) == len(variants)
    batches = config["kernels"]["batches"]
    per_batch = sum(len(variant_batches(config, v)) for v in variants)
    assert len(re.findall(r"/b\d+/time.json", r.stdout)) >= per_batch  # a file per batch
    profiled = set(re.findall(r"output: results/h200/alexnet/[^/.]+/b(\d+)/profile.json", r.stdout))
    assert profiled == {str(b) for b in profiled_batches}
    if full:
        assert profiled_batches == batches and 256 in batches
        assert any(v.endswith("-fp16") for v in variants) and any(v.endswith("-bf16") for v in variants)
        assert "vendor-compile-fp16" in variants
    else:
        assert profiled_batches == [max(batches)]  # the batch the one-batch figures read


def test_a_login_node_plans_gpu_jobs_for_the_configured_card(tmp_path):
    """On a machine without a GPU (a cluster's login node) config target_gpu names the card the
    jobs will get: the GPU jobs are planned under its name, each asking for one GPU (gpu=1, which
    the SLURM plugin submits as sbatch --gpus=1), and CuPy need not be installed there."""
    (tmp_path / "cluster.yaml").write_text("target_gpu: {name: h100-80gb-hbm3, arch: sm_90}\n")
    r = smk("-d", str(tmp_path), "--configfile", str(TEST_CONFIG), str(tmp_path / "cluster.yaml"), "-n",
            cwd=tmp_path, env={"FUSED_LAYER_NO_GPU": "1"})  # fmt: skip
    assert r.returncode == 0, r.stderr
    jobs = planned_jobs(r.stdout)
    gpu_rules = ("verify", "time", "profile", "phases", "ceilings", "provenance")
    assert {k: jobs[k] for k in gpu_rules} == {"verify": 3, "time": 3, "profile": 3, "phases": 3, "ceilings": 1,
                                               "provenance": 1}  # fmt: skip
    blocks = re.findall(r"^rule (\w+):\n(.*?)(?=^\S|\Z)", r.stdout, re.M | re.S)
    for rule, block in blocks:
        if rule in gpu_rules:
            assert "results/h100-80gb-hbm3/" in block
            assert re.search(r"resources: .*\bgpu=1\b", block), block
        else:
            assert not re.search(r"\bgpu=", block), block


def test_a_gpu_that_is_not_the_configured_card_stops(tmp_path, fake_gpu):
    (tmp_path / "cluster.yaml").write_text("target_gpu: {name: h100-80gb-hbm3, arch: sm_90}\n")
    r = smk("-d", str(tmp_path), "--configfile", str(TEST_CONFIG), str(tmp_path / "cluster.yaml"), "-n",
            cwd=tmp_path, env=fake_gpu)  # fmt: skip
    assert r.returncode != 0
    assert stderr_lines(r) == [
        "target_gpu: h100-80gb-hbm3 (sm_90) is configured, but this machine has h200 (sm_90); allowed: h200"
    ], r.stderr


def test_the_default_gpu_run_builds_only_the_projects_kernels(tmp_path, fake_gpu):
    """With a GPU: every own-kernel variant is built once, the PyTorch anchors (vendor-cl at each
    precision) never, and each is verified, timed, and profiled at profile.batches."""
    from pipeline.config import load_config
    from pipeline.stages.plan import built_variants, kernel_variants, profile_batches

    r = smk("-d", str(tmp_path / "work"), "-n", "--cores", "4", cwd=tmp_path, env=fake_gpu)
    assert r.returncode == 0, r.stderr
    jobs = planned_jobs(r.stdout)
    config = load_config(ROOT / "config" / "config.yaml")
    variants = kernel_variants(config)
    assert any(v.startswith("vendor-cl") for v in variants) and "lbl-fp16" in variants
    assert jobs["build"] + jobs["build_gen"] == len(built_variants(config)) < len(variants)
    assert not re.search(r"variant=[^,]*vendor", "\n".join(l for l in r.stdout.splitlines() if "arch=" in l))
    assert jobs["verify"] == jobs["time"] + jobs["time_alexnet_front"] + jobs["time_vgg_e_first5"] == len(variants)
    assert jobs["profile"] == sum(len(profile_batches(config, v)) for v in variants)


def test_generated_kernels_are_planned_for_both_networks(tmp_path):
    """The default config on a login node (target_gpu, no GPU here): each generated variant is built
    by build_gen (its module written beside the cubin), verified, timed by its entry's time rule at
    its entry's batches (the other network's under results/<gpu>/vgg_e/), and profiled at its
    entry's profile batches; phases only for the hand-written kernels."""
    from pipeline.config import load_config
    from pipeline.stages.plan import generated_variants

    (tmp_path / "cluster.yaml").write_text("target_gpu: {name: h200, arch: sm_90}\n")
    r = smk("-d", str(tmp_path), "--configfile", str(ROOT / "config" / "config.yaml"), str(tmp_path / "cluster.yaml"),
            "-n", cwd=tmp_path, env={"FUSED_LAYER_NO_GPU": "1"})  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "kernels.generated vgg_e.first5: tile 4x14 left out at fp32 (reuse, recompute)" in r.stderr
    jobs = planned_jobs(r.stdout)
    gen, _ = generated_variants(load_config(ROOT / "config" / "config.yaml"))
    own = [n for n, _ in gen if "-gen" in n]
    if shutil.which("nvcc"):
        assert jobs["build_gen"] == len(own) == 14
        assert "output: results/build/sm_90/vgg_e.first5.fused-reuse-t4x14-gen-fp16.cu, " in r.stdout
    assert jobs["time_alexnet_front"] == 6 and jobs["time_vgg_e_first5"] == 10
    base = "results/h200/vgg_e/vgg_e.first5.fused-reuse-t4x14-gen-fp16"
    assert f"output: {base}/b1/time.json, {base}/b16/time.json, {base}/b64/time.json" in r.stdout
    assert f"output: {base}/b64/profile.json" in r.stdout and f"output: {base}/verify.json" in r.stdout
    assert "results/h200/vgg_e/vgg_e.first5.vendor-cl-fp16/b64/profile.json" in r.stdout
    assert "results/h200/alexnet/lbl-gen/b16/time.json" in r.stdout
    assert "results/h200/alexnet/lbl-gen/b1/time.json" not in r.stdout
    assert not re.search(r"-gen[^/]*/b\d+/phases.json", r.stdout)
    # a generated variant's time.json at a batch its entry does not time: one line, before the DAG
    asked = "results/h200/vgg_e/vgg_e.first5.lbl-gen/b128/time.json"
    r = smk("-d", str(tmp_path), "--configfile", str(ROOT / "config" / "config.yaml"), str(tmp_path / "cluster.yaml"),
            "-n", asked, cwd=tmp_path, env={"FUSED_LAYER_NO_GPU": "1"})  # fmt: skip
    assert r.returncode != 0
    assert f"{asked}: batch 128 is not in the batches of kernels.generated vgg_e.first5; allowed: 1, 16, 64" in r.stderr


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH")
def test_build_gen_rule_writes_module_cubin_and_report(tmp_path):
    """The build_gen rule itself (its script, outputs and params) on one generated variant of the
    default config, without a GPU: the module, the cubin, the report naming its group."""
    import json

    target = "results/build/sm_90/lbl-gen.json"
    r = smk("-d", str(tmp_path), "--cores", "1", target, cwd=tmp_path, env={"FUSED_LAYER_NO_GPU": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads((tmp_path / target).read_text())
    assert (rep["variant"], rep["network"], rep["group"], rep["generated"]["layers"]) == (
        "lbl-gen", "alexnet", "front", ["conv1", "pool2"])  # fmt: skip
    assert (tmp_path / "results/build/sm_90/lbl-gen.cu").read_text().startswith("#define PREC 0\n")
    assert (tmp_path / "results/build/sm_90/lbl-gen.cubin").stat().st_size > 0
    r = smk("-d", str(tmp_path), "-n", target, cwd=tmp_path, env={"FUSED_LAYER_NO_GPU": "1"})
    assert "Nothing to be done" in r.stdout + r.stderr
