"""Checks of the configuration that a JSON schema cannot express.

The schema (config/schema.yaml, applied by Snakemake's ``validate``) checks keys and types. This
module checks what needs the networks: that each network exists, that a fusion group names layers
in order, that a tile size can tile the group's output map, and that the kernels' tile sizes were
compiled. Each failure is one line that names the key and the allowed values.
"""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml

from pipeline.core.networks import NetworkError, available_networks, load_network


SCHEMA = Path(__file__).resolve().parents[1] / "config" / "schema.yaml"


class ConfigError(ValueError):
    """A configuration that is well-formed but cannot be run."""


def load_config(path: str | Path) -> dict:
    """A config file as the workflow sees it: checked against the schema (one line on error) and
    with the schema's defaults filled in, by the same ``validate`` the Snakefile calls. The schema
    is the only place a default lives."""
    from snakemake.utils import validate

    config = yaml.safe_load(Path(path).read_text())
    if problem := schema_error_line(config, SCHEMA):
        raise ConfigError(problem)
    validate(config, str(SCHEMA))
    return config


def schema_error_line(config: dict, schema_path: str | Path) -> str | None:
    """The first schema violation of ``config`` as one line naming the key and what is allowed.

    Snakemake's own ``validate`` prints the whole schema on an error; this says the same in a line.
    """
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    err = jsonschema.exceptions.best_match(errors)
    key = ".".join(str(p) for p in err.absolute_path) or "<top level>"
    sub = err.schema if isinstance(err.schema, dict) else {}
    if err.validator == "additionalProperties":
        allowed = sorted(sub.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed))
        where = f"{key}: " if err.absolute_path else ""
        return f"config {where}unknown key {', '.join(map(repr, extra))}; allowed: {', '.join(allowed)}"
    if err.validator == "enum":
        allowed = ", ".join(map(str, err.validator_value))
        return f"config {key}: {err.instance!r} is not allowed; allowed: {allowed}"
    hint = sub.get("description", "")
    return f"config {key}: {err.message}" + (f" ({hint})" if hint else "")


def group_output_side(network_name: str, first: str, last: str) -> tuple[int, int]:
    """(height, width) of the output map of the group ``first..last``."""
    net = load_network(network_name)
    shapes = net.shapes()
    out = shapes[net.index(last) + 1]
    return out.height, out.width


def check_config(config: dict, arch: str = "sm_90") -> None:
    """Raise ConfigError with one line naming the key and the allowed values.

    ``arch`` is the build target (the GPU's, else the configured one): fused tiles whose shared
    memory exceeds its per-block limit are refused here, before anything is built.
    """
    known = available_networks()
    for name, spec in config["networks"].items():
        if name not in known:
            raise ConfigError(f"networks.{name}: unknown network; allowed: {', '.join(known)}")
        net = load_network(name)
        layer_names = [l.name for l in net.layers]
        for group, (first, last) in spec["groups"].items():
            key = f"networks.{name}.groups.{group}"
            for layer in (first, last):
                if layer not in layer_names:
                    raise ConfigError(f"{key}: no layer {layer!r}; allowed: {', '.join(layer_names)}")
            try:
                net.group(first, last)
            except NetworkError as err:
                raise ConfigError(f"{key}: {err}") from None
            h, w = group_output_side(name, first, last)
            bad = [t for t in spec["tile_sizes"] if t > min(h, w)]
            if bad:
                raise ConfigError(
                    f"networks.{name}.tile_sizes: {bad} cannot tile the {h}x{w} output of group "
                    f"{group}; allowed: 1..{min(h, w)}"
                )

    k = config["kernels"]
    if k["network"] not in config["networks"]:
        raise ConfigError(
            f"kernels.network: {k['network']!r} is not configured; allowed: {', '.join(config['networks'])}"
        )
    groups = config["networks"][k["network"]]["groups"]
    if k["group"] not in groups:
        raise ConfigError(f"kernels.group: {k['group']!r} unknown; allowed: {', '.join(groups)}")
    from kernels.registry import VARIANTS, Strategy, Variant  # imports without CuPy
    from pipeline.core.arch import MAX_SMEM_PER_BLOCK_BYTES
    from pipeline.core.tiles import parse_tile, tile_label

    # the tiles compiled for each configured precision (the registry's fused variants)
    compiled_for = {p: sorted({v.tile for v in VARIANTS.values() if v.strategy.fused and v.precision == p},
                              key=lambda t: (tile_label(t).count("x"), tile_label(t))) for p in k["precisions"]}  # fmt: skip
    compiled = "; ".join(f"{p}: {', '.join(map(tile_label, ts))}" for p, ts in compiled_for.items())
    tiles = []
    for t in k["tile_sizes"]:
        try:
            tiles.append(parse_tile(t))
        except ValueError as err:
            raise ConfigError(f"kernels.tile_sizes: {err}; compiled: {compiled}") from None
    bad = [tile_label(t) for t in tiles if not any(t in ts for ts in compiled_for.values())]
    if bad:
        raise ConfigError(f"kernels.tile_sizes: [{', '.join(bad)}] not compiled for {', '.join(k['precisions'])}; "
                          f"allowed: {compiled}")  # fmt: skip
    limit = MAX_SMEM_PER_BLOCK_BYTES.get(arch, MAX_SMEM_PER_BLOCK_BYTES["sm_90"])
    for p in k["precisions"]:
        for strategy in k["strategies"]:
            for t in tiles:
                v = VARIANTS.get(Variant(Strategy(strategy), t, p).name)
                if v is not None and (need := v.define["EXPECT_SMEM_BYTES"]) > limit:
                    raise ConfigError(
                        f"kernels.tile_sizes: {v.name} needs {need} bytes of shared memory per block, {arch} "
                        f"allows {limit}; choose a smaller tile"
                    )
    check_generated(config)


def check_generated(config: dict) -> None:
    """The ``kernels.generated`` entries: a configured network and group (once each), tiles that
    parse and fit the shared memory of a block at some precision (a tile that misses the configured
    ones, or some of them, is left out there: ``pipeline.stages.plan.generated_variants`` says so), profile
    batches among the entry's batches, and the group range the stages read (the default config's,
    ``kernels.registry.group_range``: a stage names a variant, not a config). ConfigError in one line."""
    from kernels.registry import group_range
    from pipeline.core.tiles import parse_tile, tile_label
    from kernels.chain import fit_problem
    from kernels.generate import PREC_DEFINE

    k = config["kernels"]
    seen = set()
    for i, entry in enumerate(k.get("generated") or []):
        key = f"kernels.generated.{i}"
        net, group = entry["network"], entry["group"]
        if net not in config["networks"]:
            raise ConfigError(f"{key}.network: {net!r} is not configured; allowed: {', '.join(config['networks'])}")
        groups = config["networks"][net]["groups"]
        if group not in groups:
            raise ConfigError(f"{key}.group: {group!r} is not a fusion group of {net}; allowed: {', '.join(groups)}")
        if (net, group) in seen:
            raise ConfigError(f"{key}: {net}.{group} has an entry already; give each group one entry")
        seen.add((net, group))
        rng = tuple(groups[group])
        try:
            stage_rng = group_range(net, group)
        except ValueError:
            stage_rng = None
        if stage_rng != rng:
            raise ConfigError(f"{key}: {net}.{group} is {list(rng)} here but {list(stage_rng) if stage_rng else 'absent'} "
                              f"in config/config.yaml, where the stages read generated groups; allowed: the same range")  # fmt: skip
        bad = [b for b in entry["profile_batches"] if b not in entry["batches"]]
        if bad:
            raise ConfigError(f"{key}.profile_batches: {bad} not among its batches; allowed: "
                              f"{', '.join(map(str, entry['batches']))}")  # fmt: skip
        problem = fit_problem(net, rng, "lbl", None, k["precisions"][0])
        if problem:
            raise ConfigError(f"{key}: no lbl-gen kernel fits: {problem}")
        for t in entry["tile_sizes"]:
            try:
                tile = parse_tile(t)
            except ValueError as err:
                raise ConfigError(f"{key}.tile_sizes: {err}") from None
            for strategy in k["strategies"]:
                problems = [fit_problem(net, rng, strategy, tile, p) for p in PREC_DEFINE]
                if all(problems):
                    raise ConfigError(f"{key}.tile_sizes: {tile_label(tile)} fits no precision ({strategy}): "
                                      f"{problems[-1]}")  # fmt: skip
