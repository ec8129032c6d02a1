# Fused-layer CNN kernels on NVIDIA GPUs and their measurement (after Alwani et al., MICRO 2016).
# config -> plan -> build -> verify -> measure -> aggregate -> figures -> report, through files.
# Rules stay thin: each calls a function in pipeline/ or analysis/ that pytest also reaches.
import re
import shutil
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from analysis import figure_list
from kernels.registry import Variant
from kernels.vendor_convs import times_convs_alone
from pipeline.config import ConfigError, check_config, schema_error_line
from pipeline.stages.plan import (
    CommandLine,
    alternatives,
    build_recipe,
    build_targets,
    built_variants,
    generated_variants,
    gpu_software_problem,
    gpu_target_problem,
    kernel_sources,
    kernel_variants,
    measurement_targets,
    model_targets,
    named_gpu_results,
    profile_batches,
    target_gpu,
    time_groups,
)

min_version("9.0")


configfile: Path(workflow.basedir, "config/config.yaml")


# One line naming the key, before any work (Snakemake's own message dumps the whole schema).
if problem := schema_error_line(config, Path(workflow.basedir) / "config/schema.yaml"):
    raise ConfigError(problem)
validate(config, "config/schema.yaml")  # fills in the schema's defaults
# GPU: None on a machine without a GPU (the report is then model-only); ARCH: its nvcc target,
# else kernels.arch from the config
# GPU_HERE: whether that GPU is on this machine (not so on a cluster's login node, config target_gpu)
try:
    GPU, ARCH, GPU_HERE = target_gpu(config)
except ConfigError as err:  # a GPU here that is not the configured one: one line
    sys.exit(str(err))
check_config(config, ARCH)

# A GPU result named on the command line must be on the card present: one line, before any job.
if problem := gpu_target_problem(named_gpu_results(sys.argv[1:]), GPU, config):
    sys.exit(problem)
if problem := gpu_software_problem(GPU if GPU_HERE else None):
    raise WorkflowError(problem)
KNET = config["kernels"]["network"]
if GPU and config["profile"]["enabled"] and not profile_batches(config):
    print(
        "no Nsight Compute profiles: none of profile.batches is in kernels.batches",
        file=sys.stderr,
    )
# a generated tile that misses a precision's shared memory: left out there, said once
GEN_NOTES = generated_variants(config)[1]
for note in GEN_NOTES:
    print(note, file=sys.stderr)
# own kernels: hand-written (kernels/*.cu, registry recipes) and generated (kernels/generate.py)
GEN_BUILT = [v for v in built_variants(config) if Variant.parse(v).generated]
HAND_BUILT = [v for v in built_variants(config) if v not in GEN_BUILT]
NVCC = shutil.which("nvcc") is not None
if not NVCC:
    print(
        "nvcc not on PATH: no build stage; kernels are compiled by CuPy's NVRTC at run time",
        file=sys.stderr,
    )
# For the report's first line: did this working directory measure anything on a GPU?
config["_report"] = {
    "gpu": GPU or "none",
    "measured_gpus": sorted(
        {p.parts[1] for p in Path("results").glob("*/*/*/b*/time.json")}
    ),
}
ARCHIVES = sorted(
    str(p)
    for p in Path(workflow.basedir, "reports/archive").glob("*-*-*-*")
    if p.is_dir()
)


def report_outputs(rule):
    """A figure rule's named outputs, each with its caption and labels (analysis/figure_list.py)."""
    return {i.name: report(i.path, **i.report_args()) for i in figure_list.items(rule)}


def cubin_input(wildcards):
    """The build stage's cubin; none for the PyTorch anchors, or without nvcc (the API then compiles
    with NVRTC)."""
    if not Variant.parse(wildcards.variant).strategy.own_kernels or not NVCC:
        return []
    return f"results/build/{ARCH}/{wildcards.variant}.cubin"


def build_sources(wildcards):
    """The variant's CUDA source and the headers it includes (a generated variant's: chain.cuh, its
    headers, the generator and the network file): an edit rebuilds just its variants."""
    return kernel_sources(wildcards.variant, workflow.basedir)


def vendor_sources(wildcards):
    """The channels-last anchor's time job also times each conv alone (kernels/vendor_convs.py): its
    input; the other anchors' and our variants' time jobs do not read it."""
    return (
        [repo("kernels/vendor_convs.py")]
        if times_convs_alone(Variant.parse(wildcards.variant))
        else []
    )


def nvrtc_sources(wildcards):
    """Without nvcc a GPU stage compiles the sources itself (NVRTC): then they are its inputs."""
    return [] if NVCC else kernel_sources(wildcards.variant, workflow.basedir)


def repo(path):
    """A file of this repository, wherever the working directory (-d) is."""
    return str(Path(workflow.basedir, path))


report: "reports/workflow.rst"


wildcard_constraints:
    gpu=re.escape(GPU) if GPU else "(?!)",  # only the card present; none without a GPU
    variant=alternatives(kernel_variants(config)),
    batch=r"\d+",
    network="|".join(config["networks"]),
    arch=r"sm_\d+a?",


onsuccess:
    if Path("results/tidy.csv").exists():
        from analysis.summary import summary_table

        print(summary_table("results/tidy.csv"))


rule all:
    input:
        model_targets(config),
        build_targets(config, ARCH),
        measurement_targets(config, GPU),
        "results/tidy.csv",
        figure_list.targets(config["networks"]),


rule model:
    input:
        network=repo("config/networks/{network}.yaml"),
    output:
        pyramids="results/model/{network}/pyramids.csv",
        dse="results/model/{network}/dse.csv",
    log:
        "logs/model/{network}.log",
    params:
        spec=lambda w: config["networks"][w.network],
        bytes_per_value=config["model"]["bytes_per_value"],
    script:
        "pipeline/stages/model.py"


rule paper:
    input:
        figures=repo("reports/paper_figures.yaml"),
    output:
        csv="results/model/paper_comparison.csv",
    log:
        "logs/model/paper.log",
    script:
        "pipeline/stages/paper.py"


rule plan:
    input:
        pyramids=f"results/model/{KNET}/pyramids.csv",
        networks=[repo(f"config/networks/{n}.yaml") for n in config["networks"]],
    output:
        csv="results/plan.csv",
    log:
        "logs/plan.log",
    params:
        kernels=config["kernels"],
        networks=config["networks"],
        bytes_per_value=config["model"]["bytes_per_value"],
        variants=kernel_variants(config),
    script:
        "pipeline/stages/plan.py"


rule build:
    input:
        sources=build_sources,
    output:
        cubin="results/build/{arch}/{variant}.cubin",
        json="results/build/{arch}/{variant}.json",
    log:
        "logs/build/{arch}/{variant}.log",
    wildcard_constraints:
        variant=alternatives(HAND_BUILT),
    params:
        # the registry's recipe (source, entries, -D flags): a changed constant rebuilds
        recipe=lambda w: build_recipe(w.variant),
    script:
        "pipeline/stages/build.py"


rule build_gen:
    input:
        sources=build_sources,
    output:
        source="results/build/{arch}/{variant}.cu",  # the module kernels/generate.py wrote
        cubin="results/build/{arch}/{variant}.cubin",
        json="results/build/{arch}/{variant}.json",
    log:
        "logs/build/{arch}/{variant}.log",
    wildcard_constraints:
        variant=alternatives(GEN_BUILT),
    params:
        # the group's layer range, strategy, tile and precision: a changed group rebuilds
        recipe=lambda w: build_recipe(w.variant, config["networks"]),
        networks=config["networks"],
    script:
        "pipeline/stages/build.py"


rule ceilings:
    input:
        source=repo("kernels/ceilings.cu"),  # compiled at run time (NVRTC); an edit remeasures
    output:
        json="results/{gpu}/ceilings.json",
    log:
        "logs/{gpu}/ceilings.log",
    resources:
        gpu=1,
    script:
        "pipeline/stages/ceilings.py"


rule provenance:
    output:
        json="results/{gpu}/provenance.json",
    log:
        "logs/{gpu}/provenance.log",
    resources:
        gpu=1,  # asks the card for its facts: on a cluster it must run on a GPU node
    params:
        command=CommandLine(sys.argv),  # recorded, never a reason to rerun
    script:
        "pipeline/stages/provenance.py"


rule verify:
    input:
        cubin=cubin_input,
        sources=nvrtc_sources,
    output:
        json="results/{gpu}/{network}/{variant}/verify.json",
    log:
        "logs/{gpu}/{network}/{variant}/verify.log",
    resources:
        gpu=1,
    params:
        batch=config["verify"]["batch"],
        rtol=lambda w: config["verify"]["rtol"][Variant.parse(w.variant).precision],
    script:
        "pipeline/stages/verify.py"


# One job per variant sweeps its batches (one process start), one file per batch: a rule per set of
# batches (time for kernels.batches, time_<network>_<group> per kernels.generated entry).
for TIME_RULE, TIME_NET, TIME_VARIANTS, TIME_BATCHES in time_groups(config):

    rule:
        name:
            TIME_RULE
        input:
            verify="results/{gpu}/{network}/{variant}/verify.json",
            cubin=cubin_input,
            sources=nvrtc_sources,
            vendor=vendor_sources,
        output:
            json=expand(
                "results/{{gpu}}/{{network}}/{{variant}}/b{batch}/time.json",
                batch=TIME_BATCHES,
            ),
        log:
            "logs/{gpu}/{network}/{variant}/time.log",
        wildcard_constraints:
            network=re.escape(TIME_NET),
            variant=alternatives(TIME_VARIANTS),
        resources:
            gpu=1,
        params:
            timing=config["timing"],
            batches=TIME_BATCHES,
        script:
            "pipeline/stages/time.py"


rule profile:
    input:
        verify="results/{gpu}/{network}/{variant}/verify.json",
        cubin=cubin_input,
        sources=nvrtc_sources,
    output:
        json="results/{gpu}/{network}/{variant}/b{batch}/profile.json",
    log:
        "logs/{gpu}/{network}/{variant}/b{batch}/profile.log",
    resources:
        gpu=1,
    params:
        cache_control=config["profile"]["cache_control"],
        clock_control=config["profile"]["clock_control"],
    script:
        "pipeline/stages/profile.py"


rule phases:
    input:
        verify="results/{gpu}/{network}/{variant}/verify.json",
        cubin=cubin_input,
        sources=nvrtc_sources,
    output:
        json="results/{gpu}/{network}/{variant}/b{batch}/phases.json",
    log:
        "logs/{gpu}/{network}/{variant}/b{batch}/phases.log",
    wildcard_constraints:
        # the hand-written kernels' per-kernel and per-phase split; generated ones have none
        variant=alternatives(HAND_BUILT),
    resources:
        gpu=1,
    params:
        launches=config["phases"]["launches"],
    script:
        "pipeline/stages/phases.py"


rule aggregate:
    input:
        plan="results/plan.csv",
        measured=measurement_targets(config, GPU),
        builds=build_targets(config, ARCH),
    output:
        tidy="results/tidy.csv",
        parquet="results/tidy.parquet",
        kernels="results/tidy_kernels.csv",
        ceilings="results/tidy_ceilings.csv",
        phases="results/tidy_phases.csv",
        provenance="results/tidy_provenance.csv",
    log:
        "logs/aggregate.log",
    params:
        results_dirs=["results"],
        archive_dirs=ARCHIVES,
    script:
        "analysis/aggregate.py"


rule model_figures:
    input:
        pyramids="results/model/{network}/pyramids.csv",
        dse="results/model/{network}/dse.csv",
        paper="results/model/paper_comparison.csv",
    output:
        **report_outputs("model_figures"),
    log:
        "logs/figures/{network}.log",
    script:
        "analysis/model_figures.py"


rule measured_figures:
    input:
        tidy="results/tidy.csv",
        kernels="results/tidy_kernels.csv",
        ceilings="results/tidy_ceilings.csv",
        phases="results/tidy_phases.csv",
        paper="results/model/paper_comparison.csv",
    output:
        **report_outputs("measured_figures"),
    log:
        "logs/figures/measured.log",
    params:
        network=KNET,
    script:
        "analysis/measured_figures.py"


rule tables:
    input:
        tidy="results/tidy.csv",
        paper="results/model/paper_comparison.csv",
        provenance="results/tidy_provenance.csv",
    output:
        **report_outputs("tables"),
    log:
        "logs/figures/tables.log",
    script:
        "analysis/tables.py"
