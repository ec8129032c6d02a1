"""From the configuration to the work: which variants, which batches, which files to make.

The Snakefile asks this module for its targets, so the target logic is testable without Snakemake.
"""

import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from pipeline.core.gpus import detect_gpus


def kernel_variants(config: dict) -> list[str]:
    """Variant names to run, in report order: per precision, the baseline first, the fused
    strategies by tile, the vendor reference last; then the generated variants of each
    ``kernels.generated`` entry (:func:`generated_variants`). ``config`` is validated (schema
    defaults filled). A combination the registry does not build is left out;
    ``pipeline.config.check_config`` refuses a config that leaves a precision with no fused variant."""
    from kernels.registry import VARIANTS, Strategy, Variant
    from pipeline.core.tiles import parse_tile

    k = config["kernels"]
    records = []
    for precision in k["precisions"]:
        records.append(Variant(Strategy.LBL, precision=precision))
        records += [Variant(Strategy(s), parse_tile(t), precision) for s in k["strategies"] for t in k["tile_sizes"]]
        records += [Variant(Strategy.VENDOR, precision=precision, impl="" if i == "eager" else i) for i in k["vendor"]]
    hand = [v.name for v in records if v.name in VARIANTS]
    return hand + [name for name, _ in generated_variants(config)[0] if name not in hand]


def generated_variants(config: dict) -> tuple[list[tuple[str, dict]], list[str]]:
    """(variant name, its ``kernels.generated`` entry) for every generated variant, and one note per
    tile left out at a precision whose shared memory it does not fit (it runs at the others).

    Per entry and precision of ``kernels.precisions``: ``lbl-gen``, ``fused-<strategy>-t<tile>-gen``
    per strategy of ``kernels.strategies`` and tile of the entry, and for a group other than
    alexnet/front the vendor anchors of the entry's ``vendor`` (default ``kernels.vendor``;
    alexnet/front has its own above); a group's variants carry the ``<network>.<group>.`` prefix. A tile that fits no precision is
    ``pipeline.config.check_config``'s error, not a note."""
    from kernels.chain import fit_problem
    from kernels.registry import GEN_IMPL, Strategy, Variant
    from pipeline.core.tiles import parse_tile, tile_label

    k = config["kernels"]
    out, notes = [], []
    for entry in k.get("generated") or []:
        net, group = entry["network"], entry["group"]
        rng = tuple(config["networks"][net]["groups"][group])
        for precision in k["precisions"]:
            records = [Variant(Strategy.LBL, None, precision, net, group, impl=GEN_IMPL)]
            for s in k["strategies"]:
                for t in entry["tile_sizes"]:
                    tile = parse_tile(t)
                    if fit_problem(net, rng, s, tile, precision) is None:
                        records.append(Variant(Strategy(s), tile, precision, net, group, impl=GEN_IMPL))
            for t in entry["tile_sizes"]:
                tile = parse_tile(t)
                missed = [s for s in k["strategies"] if fit_problem(net, rng, s, tile, precision)]
                if missed:
                    notes.append(f"kernels.generated {net}.{group}: tile {tile_label(tile)} left out at {precision} "
                                 f"({', '.join(missed)}): its rings exceed the shared memory of a block")  # fmt: skip
            if (net, group) != ("alexnet", "front"):
                records += [Variant(Strategy.VENDOR, None, precision, net, group, impl="" if i == "eager" else i)
                            for i in entry.get("vendor", k["vendor"])]  # fmt: skip
            out += [(v.name, entry) for v in records]
    return out, notes


def built_variants(config: dict) -> list[str]:
    """Variants with a CUDA source, hand-written or generated (the vendor path runs cuDNN, nothing to build)."""
    from kernels.registry import Variant

    return [v for v in kernel_variants(config) if Variant.parse(v).strategy.own_kernels]


def alternatives(names: Iterable[str]) -> str:
    """A wildcard constraint matching exactly ``names`` (none: matches nothing)."""
    names = list(names)
    return "|".join(re.escape(n) for n in names) if names else "(?!)"


def time_groups(config: dict) -> list[tuple[str, str, list[str], list[int]]]:
    """(rule name, network, variants, batches) per ``time`` rule: one job per variant sweeps its
    batches, and a rule's outputs are one file per batch, so variants with other batches need a rule
    of their own: ``time`` for the hand-written kernels and their anchors (``kernels.batches``),
    ``time_<network>_<group>`` per ``kernels.generated`` entry (its ``batches``)."""
    names = kernel_variants(config)
    k = config["kernels"]
    groups = [("time", k["network"], [v for v in names if variant_entry(config, v) is None], list(k["batches"]))]
    for entry in k.get("generated") or []:
        mine = [v for v in names if variant_entry(config, v) is entry]
        rule = re.sub(r"\W", "_", f"time_{entry['network']}_{entry['group']}")
        groups.append((rule, entry["network"], mine, list(entry["batches"])))
    return groups


def variant_entry(config: dict, name: str) -> dict | None:
    """The ``kernels.generated`` entry a variant comes from (a generated variant, or a vendor anchor
    of another group than alexnet/front), else None."""
    return dict(generated_variants(config)[0]).get(name)


def variant_batches(config: dict, name: str) -> list[int]:
    """The batches a variant is timed at: its generated entry's, else ``kernels.batches``."""
    entry = variant_entry(config, name)
    return list((entry or config["kernels"])["batches"])


def variant_network(config: dict, name: str) -> str:
    """The network folder of a variant's results: its record's network (``kernels.network`` for the
    hand-written kernels and their anchors)."""
    from kernels.registry import Variant

    v = Variant.parse(name)
    return v.network if variant_entry(config, name) is not None else config["kernels"]["network"]


INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


# What a generated variant's module is written from besides the headers kernels/chain.cuh includes:
# the generator, the schedule and layout (and the pyramid geometry they take), the lbl segmentation.
GENERATOR_SOURCES = ("kernels/generate.py", "kernels/chain.py", "pipeline/model/linebuffer.py",
                     "pipeline/model/pyramid.py")  # fmt: skip


def kernel_sources(variant: str, root: str | Path) -> list[str]:
    """The CUDA files a variant is compiled from: its source and, recursively, the files it
    ``#include "..."``s from ``kernels/`` (paths under ``root``, the repository). Inputs of its build,
    so an edit to one source rebuilds the variants made from it and no other; empty for vendor.
    A generated variant's: kernels/chain.cuh and its headers, the generator's Python
    (``GENERATOR_SOURCES``) and its network file."""
    from kernels.registry import Variant, variant as lookup

    v = Variant.parse(variant)
    root = Path(root)
    if v.generated:
        extra = [root / f for f in GENERATOR_SOURCES] + [root / "config" / "networks" / f"{v.network}.yaml"]
        return sorted(set(_with_includes(root, "kernels/chain.cuh")) | {str(f) for f in extra})
    source = lookup(variant).source
    if source is None:
        return []
    return _with_includes(root, source)


def _with_includes(root: Path, source: str) -> list[str]:
    seen: list[Path] = []
    todo = [root / source]
    while todo:
        f = todo.pop()
        if f in seen or not f.exists():
            continue
        seen.append(f)
        todo += [root / "kernels" / name for name in INCLUDE.findall(f.read_text())]
    return sorted(str(f) for f in seen)


class CommandLine:
    """The command line as a param that Snakemake records for provenance.json but does not compare:
    its persistence compares params of builtin types only (str, list, dict, ...), so a later run
    with other options (``--cores 4``) does not rerun provenance and all that follows. Iterating
    gives the words (pipeline.stages.provenance.collect joins them)."""

    def __init__(self, argv: Iterable[str]):
        self.argv = [str(a) for a in argv]

    def __iter__(self):
        return iter(self.argv)

    def __repr__(self) -> str:
        return f"CommandLine({self.argv!r})"


def build_recipe(variant: str, networks: dict | None = None) -> str:
    """What the build stage compiles for ``variant``, as one string: a Snakemake param, so editing
    a registry constant that changes a source, an entry or a -D flag reruns the build. A generated
    variant's: its group's layer range (``networks``: the config's section), strategy, tile, precision."""
    from kernels.registry import Variant, group_range, nvcc_flags, variant as lookup

    v = Variant.parse(variant)
    if v.generated:
        first, last = group_range(v.network, v.group, networks)
        return f"generated {v.network} {first}..{last} {v.strategy} {v.tile_label} {v.precision}"
    v = lookup(variant)
    return " ".join([str(v.source), *v.entries, *nvcc_flags(v)])


def target_gpu(config: dict) -> tuple[str | None, str, bool]:
    """(results folder name of the GPU to measure on or None, its nvcc target, whether it is on
    this machine): one nvidia-smi query. Without a GPU here, ``target_gpu`` of the config names the
    card the GPU jobs will run on (a cluster's login node submits them to GPU nodes); without
    either the run is model-only and the nvcc target is ``kernels.arch``. A GPU here that is not
    the configured one is a ConfigError (on a cluster: the job got another card than asked for).
    """
    from pipeline.config import ConfigError

    gpus = detect_gpus()
    want = config.get("target_gpu")
    if gpus:
        here = gpus[0]
        if want and (want["name"], want["arch"]) != (here.slug, here.arch):
            raise ConfigError(f"target_gpu: {want['name']} ({want['arch']}) is configured, but this machine has "
                              f"{here.slug} ({here.arch}); allowed: {here.slug}")  # fmt: skip
        return here.slug, here.arch, True
    if want:
        return want["name"], want["arch"], False
    return None, config["kernels"]["arch"], False


# The files of the rules with a {gpu} wildcard (verify, time, profile, phases, ceilings, provenance).
GPU_RESULT = re.compile(
    r"results/(?P<gpu>[^/]+)/(?:(?:ceilings|provenance)\.json"
    r"|[^/]+/[^/]+/(?:verify\.json|b(?P<batch>\d+)/(?P<kind>time|profile|phases)\.json))"
)


def named_gpu_results(argv: Iterable[str]) -> list[str]:
    """The GPU result files among command-line words (targets, ``--forcerun``/``--until`` values),
    as paths relative to the working directory. Snakemake hands the Snakefile no target list
    while it is parsed, so the words are read as given."""
    out = []
    for word in argv:
        word = word.split("=", 1)[1] if word.startswith("--") and "=" in word else word
        path = os.path.relpath(word) if os.path.isabs(word) else os.path.normpath(word)
        if GPU_RESULT.fullmatch(path):
            out.append(path)
    return out


def gpu_target_problem(paths: Iterable[str], gpu: str | None, config: dict | None = None) -> str | None:
    """One line for the first GPU result file that this machine cannot make, or None.

    A path names a card by its ``results/<gpu>/`` folder: it must be the card present (the line
    then gives the path on that card). Without a GPU, no such file can be made. With ``config``,
    a time.json must be at one of ``kernels.batches`` (the time rule sweeps those batches).
    """
    for path in paths:
        m = GPU_RESULT.fullmatch(path)
        if m is None:
            continue
        asked = m["gpu"]
        if gpu is None:
            why = "FUSED_LAYER_NO_GPU is set" if os.environ.get("FUSED_LAYER_NO_GPU") else "nvidia-smi finds none"
            return f"{path} needs a GPU ({asked}), and this machine has none ({why}); model-only targets still run"
        if asked != gpu:
            return (f"{path} names GPU {asked}, but this machine has {gpu}: "
                    f"ask for results/{gpu}/{path.split('/', 2)[2]}")  # fmt: skip
        if config is not None and m["kind"] == "time":
            variant = path.split("/")[3]
            entry = variant_entry(config, variant)
            allowed = (entry or config["kernels"])["batches"]
            if int(m["batch"]) not in allowed:
                key = f"the batches of kernels.generated {entry['network']}.{entry['group']}" if entry else "kernels.batches"
                return f"{path}: batch {m['batch']} is not in {key}; allowed: {', '.join(map(str, allowed))}"
    return None


def model_targets(config: dict) -> list[str]:
    out = [f"results/model/{n}/pyramids.csv" for n in config["networks"]]
    out += [f"results/model/{n}/dse.csv" for n in config["networks"]]
    return out + ["results/model/paper_comparison.csv", "results/plan.csv"]


def build_targets(config: dict, arch: str) -> list[str]:
    if shutil.which("nvcc") is None:
        return []
    return [f"results/build/{arch}/{v}.json" for v in built_variants(config)]


def measurement_targets(config: dict, gpu: str | None) -> list[str]:
    """verify/time/profile files for every variant x its batches (:func:`variant_batches`); empty
    without a GPU."""
    if gpu is None:
        return []
    out = [f"results/{gpu}/ceilings.json", f"results/{gpu}/provenance.json"]
    for v in kernel_variants(config):
        profiled = profile_batches(config, v)
        for b in variant_batches(config, v):
            base = f"results/{gpu}/{variant_network(config, v)}/{v}/b{b}"
            out += [f"{base}/time.json"]
            if b in profiled:
                out += [f"{base}/profile.json"]
    return out + phases_targets(config, gpu)


def profile_batches(config: dict, variant: str | None = None) -> list[int]:
    """The batches Nsight Compute runs at: ``profile.batches`` that are also measured
    (``kernels.batches``), or for a variant of a ``kernels.generated`` entry that entry's
    ``profile_batches`` among its ``batches``; none when ``profile.enabled`` is false."""
    if not config["profile"]["enabled"]:
        return []
    entry = variant_entry(config, variant) if variant is not None else None
    if entry is not None:
        return [b for b in entry["batches"] if b in entry["profile_batches"]]
    return [b for b in config["kernels"]["batches"] if b in config["profile"]["batches"]]


def phases_targets(config: dict, gpu: str | None) -> list[str]:
    """phases.json for every hand-written lbl and fused variant at the configured phase batches (GPU
    only). Generated variants have no phase counters: their kernels are one loop over row
    operations, so the per-kernel/per-phase split of the hand-written ones does not apply."""
    from kernels.registry import VARIANTS

    ph = config["phases"]
    if gpu is None or not ph["enabled"]:
        return []
    net = config["kernels"]["network"]
    return [f"results/{gpu}/{net}/{v}/b{b}/phases.json" for v in kernel_variants(config)
            if v in VARIANTS and VARIANTS[v].strategy.own_kernels for b in ph["batches"]]  # fmt: skip


def lbl_gpu_dram_bytes_per_image(layers, in_shape, bytes_per_value: int = 4) -> int:
    """Feature-map bytes one image moves in the `lbl` kernels: a conv carries its ReLU epilogue,
    every LRN and max pool is its own kernel that reads its input map and writes its output map."""
    from pipeline.model.costs import group_shapes

    shapes = group_shapes(layers, in_shape)
    values, start = 0, 0
    for i, layer in enumerate(layers):
        last = i + 1 == len(layers)
        merged_next = not last and layers[i + 1].type == "relu" and layer.type == "conv"
        if merged_next:
            continue
        values += shapes[start].values + shapes[i + 1].values
        start = i + 1
    return values * bytes_per_value


def plan_table(config: dict, variants: list[str]) -> "pd.DataFrame":
    """One row per kernel variant x batch (its own batches, :func:`variant_batches`): the variant's
    record and the model's predictions for it, for its network and group.

    DRAM bytes per image are the compulsory feature-map traffic of the variant's kernels plus the
    weights read once per batch (weight_bytes / batch); ``compulsory_dram_bytes_per_image`` is the
    group's input and output map plus the same weight share. For the hand-written fused variants the
    executed work of the kernel's own loops (kernels/work.py) sits beside the pyramid's MACs: what
    empty register-tile slots and padded K add, and the FLOPs Nsight Compute should count. Generated
    variants take their numbers from their kernels' layouts (pipeline/model/linebuffer.py at the
    network's input size): extra MACs = the MACs the schedule performs (``performed_macs_per_image``
    over the pass's kernels) - the useful ones, on-chip bytes = the shared memory of one block (the largest kernel's, for lbl-gen),
    and DRAM maps = each kernel's input and output map. ``onchip_bytes_per_block``: the shared
    memory of one block as built, for every fused kernel (hand-written: the registry's
    EXPECT_SMEM_BYTES) and lbl-gen. ``output_bytes_per_image``: the group's output map, the write
    every variant owes DRAM. `vendor` is not modelled (NaN). Analysis
    joins these columns and computes none of them.
    """
    import pandas as pd

    from kernels.registry import BYTES_PER_VALUE, Variant
    from kernels.work import fused_work
    from pipeline.core.networks import load_network
    from pipeline.model.costs import group_costs, group_input_shape
    from pipeline.model.linebuffer import performed_macs_per_image

    k = config["kernels"]
    rows = []
    nets: dict = {}  # each network file parsed once
    for variant in variants:
        v = Variant.parse(variant)
        entry = variant_entry(config, variant)
        net_name, group = (v.network, v.group) if entry else (k["network"], k["group"])
        net = nets[net_name] if net_name in nets else nets.setdefault(net_name, load_network(net_name))
        first, last = config["networks"][net_name]["groups"][group]
        layers = net.group(first, last)
        in_shape = group_input_shape(net, first)
        shapes = net.shapes()[net.index(first) : net.index(last) + 2]
        bpv = BYTES_PER_VALUE[v.precision]  # maps and weights in the variant's storage
        reference = group_costs(layers, in_shape, 1, "reuse", ("x", "y"), bpv)
        useful = reference.useful_macs_per_image
        largest_intermediate = max(s.values for s in shapes[1:-1]) * bpv
        costs = work = None
        per_block = float("nan")  # shared memory of one block as built (fused kernels)
        if v.generated:
            from kernels.chain import pass_layouts

            layouts = pass_layouts(layers, in_shape, str(v.strategy), v.tile, v.precision)
            performed = sum(performed_macs_per_image(lay) for lay in layouts)
            maps = sum(lay.shapes[0].values + lay.shapes[-1].values for lay in layouts) * bpv
            onchip, extra = max(lay.smem_bytes for lay in layouts), performed - useful
            per_block = onchip
        elif v.strategy.fused:
            # as the kernels run: column strips walked top to bottom (reuse in y), balanced tiles
            costs = group_costs(layers, in_shape, v.tile, v.strategy, ("y",), bpv, split="balanced")
            # the executed-work count walks fused.cu's loops: FP32 builds only (fused_tc.cu differs)
            work = fused_work(v.tile, v.strategy, in_shape.height, in_shape.width) if v.precision == "fp32" else None
            maps, onchip, extra = costs.dram_bytes_per_image_fused, costs.onchip_bytes, costs.extra_macs_per_image
            from kernels.registry import variant as lookup

            per_block = lookup(variant).define.get("EXPECT_SMEM_BYTES", float("nan"))
        elif v.strategy == "lbl":
            maps, onchip, extra = lbl_gpu_dram_bytes_per_image(layers, in_shape, bpv), 0, 0
        else:
            maps = onchip = extra = float("nan")
        for batch in variant_batches(config, variant):
            rows.append({
                **v.record(), "network": net.name, "group": group, "batch": batch,
                "model_dram_bytes_per_image": maps + reference.weight_bytes / batch,
                "model_onchip_bytes": onchip,
                "onchip_bytes_per_block": per_block,
                "model_useful_macs_per_image": useful,
                "model_extra_macs_per_image": extra,
                "kernel_padding_macs_per_image": float("nan") if work is None else work.padding_macs,
                "kernel_counted_flops_per_image": float("nan") if work is None else work.flops,
                "compulsory_dram_bytes_per_image": reference.dram_bytes_per_image_fused
                + reference.weight_bytes / batch,
                "weight_bytes": reference.weight_bytes,
                "largest_intermediate_bytes_per_image": largest_intermediate,
                "output_bytes_per_image": shapes[-1].values * bpv,
            })  # fmt: skip
    return pd.DataFrame(rows)


if __name__ == "__main__":  # only under Snakemake's script: directive
    sm = snakemake  # noqa: F821
    table = plan_table({"kernels": sm.params.kernels, "networks": sm.params.networks,
                        "model": {"bytes_per_value": sm.params.bytes_per_value}}, sm.params.variants)  # fmt: skip
    table.to_csv(sm.output.csv, index=False)


def gpu_software_problem(gpu: str | None) -> str | None:
    """One line saying what is missing to measure on the GPU that was found, or None."""
    import importlib.util

    if gpu is not None and importlib.util.find_spec("cupy") is None:
        return (f"a GPU was found ({gpu}) but CuPy is not installed: pip install -e '.[gpu]' "
                "(or set FUSED_LAYER_NO_GPU=1 for a model-only run)")  # fmt: skip
    return None
