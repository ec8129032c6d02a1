"""Configuration errors: one line naming the key and the allowed values, before any work."""

import re
from pathlib import Path

import pytest

from pipeline.config import ConfigError, check_config, load_config, schema_error_line

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "config" / "schema.yaml"


@pytest.fixture
def config():
    return load_config(ROOT / "config" / "config.yaml")  # schema defaults filled, as the Snakefile does


def test_shipped_configs_are_valid(config):
    assert schema_error_line(config, SCHEMA) is None
    check_config(config)
    test_cfg = load_config(ROOT / "tests" / "data" / "config.yaml")
    assert schema_error_line(test_cfg, SCHEMA) is None
    check_config(test_cfg)


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda c: c.update(tiles=[2]), "config unknown key 'tiles'; allowed: kernels, model, networks"),
        (lambda c: c["kernels"].update(bathces=[1]), "config kernels: unknown key 'bathces'; allowed: arch, batches"),
        (lambda c: c["kernels"].update(precisions=["fp64"]), "config kernels.precisions.0: 'fp64' is not allowed; allowed: fp32"),
        (lambda c: c["kernels"].update(batches=[0]), "config kernels.batches.0: 0 is less than the minimum of 1"),
        (lambda c: c["kernels"].update(batches="128"), "config kernels.batches: '128' is not of type 'array'"),
        (lambda c: c["kernels"].update(strategies=["reus"]), "config kernels.strategies.0: 'reus' is not allowed; allowed: reuse, recompute"),
        # the generated kernels' entries (kernels.generated)
        (lambda c: c["kernels"].update(generated=[{"network": "vgg_e", "group": "first5", "tile_sizes": ["2by14"],
                                                   "batches": [1]}]), "config kernels.generated.0.tile_sizes.0"),
        (lambda c: c["kernels"].update(generated=[{"network": "vgg_e", "group": "first5", "batches": [1]}]),
         "config kernels.generated.0: 'tile_sizes' is a required property"),
        (lambda c: c["kernels"].update(generated=[{**GEN, "tiles": [2]}]),
         "config kernels.generated.0: unknown key 'tiles'; allowed: batches, group, network, profile_batches, tile_sizes"),
    ],
)  # fmt: skip
def test_schema_errors_are_one_line(config, change, expected):
    change(config)
    line = schema_error_line(config, SCHEMA)
    assert line is not None and "\n" not in line
    assert line.startswith(expected), line


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda c: c["networks"].update(resnet={"groups": {"g": ["a", "b"]}, "tile_sizes": [1]}),
         "networks.resnet: unknown network; allowed: alexnet, vgg_e"),
        (lambda c: c["networks"]["alexnet"]["groups"].update(front=["conv1", "pool9"]),
         "networks.alexnet.groups.front: no layer 'pool9'; allowed: conv1, relu1"),
        (lambda c: c["networks"]["alexnet"]["groups"].update(front=["pool2", "conv1"]),
         "networks.alexnet.groups.front: fusion group pool2..conv1"),
        (lambda c: c["networks"]["alexnet"].update(tile_sizes=[4, 14]),
         "networks.alexnet.tile_sizes: [14] cannot tile the 13x13 output of group front; allowed: 1..13"),
        (lambda c: c["kernels"].update(network="vgg_e", group="front"),
         "kernels.group: 'front' unknown; allowed: first5"),
        (lambda c: c["kernels"].update(tile_sizes=[99]), "kernels.tile_sizes: [99] not compiled for fp32, fp16; allowed: fp32: "),
    ],
)  # fmt: skip
def test_semantic_errors_are_one_line(config, change, expected):
    change(config)
    with pytest.raises(ConfigError) as err:
        check_config(config)
    assert "\n" not in str(err.value)
    assert str(err.value).startswith(expected), str(err.value)


def test_rectangular_kernel_tiles(config):
    """kernels.tile_sizes takes rows x cols for the compiled rectangular tiles (the shipped 2x7)."""
    from pipeline.stages.plan import kernel_variants

    assert "2x7" in config["kernels"]["tile_sizes"]
    config["kernels"].update(tile_sizes=["2x7", 4], strategies=["reuse"], precisions=["fp32"], generated=[])
    assert schema_error_line(config, SCHEMA) is None
    check_config(config)
    assert kernel_variants(config)[1:3] == ["fused-reuse-t2x7", "fused-reuse-t4"]
    for bad, msg in ((["2x9"], "kernels.tile_sizes: [2x9] not compiled for fp32; allowed: fp32: 2, 3, 4, 2x7"),
                     (["2by7"], "config kernels.tile_sizes.0")):  # fmt: skip
        config["kernels"]["tile_sizes"] = bad
        err = schema_error_line(config, SCHEMA)
        if err is None:
            with pytest.raises(ConfigError, match=re.escape(msg)):
                check_config(config)
        else:
            assert err.startswith(msg), err


def test_tile_that_does_not_fit_shared_memory_is_refused(config):
    """sm_75 allows 64 KB per block: the T=4 fused kernels (about 210 KB) must be refused."""
    config["kernels"].update(tile_sizes=[4], precisions=["fp32"], generated=[])
    check_config(config, "sm_90")
    with pytest.raises(ConfigError) as err:
        check_config(config, "sm_75")
    assert "needs" in str(err.value) and "sm_75 allows 65536" in str(err.value)


def test_tiles_follow_the_precisions(config):
    """A tile must be compiled for one of the configured precisions (4x7 exists on tensor cores only)."""
    config["kernels"].update(precisions=["fp32", "fp16"], tile_sizes=["2x7", "4x7"])
    check_config(config)
    config["kernels"].update(precisions=["fp32"])
    with pytest.raises(ConfigError, match=r"\[4x7\] not compiled for fp32; allowed: fp32: 2, 3, 4, 2x7"):
        check_config(config)


GEN = {"network": "vgg_e", "group": "first5", "tile_sizes": ["2x14"], "batches": [1, 64], "profile_batches": [64]}


@pytest.mark.parametrize(
    "entry, expected",
    [
        ({**GEN, "network": "resnet"}, "kernels.generated.0.network: 'resnet' is not configured; allowed: alexnet, vgg_e"),
        ({**GEN, "group": "front"}, "kernels.generated.0.group: 'front' is not a fusion group of vgg_e; allowed: first5"),
        ({**GEN, "tile_sizes": ["2x28"]}, "kernels.generated.0.tile_sizes: 2x28 fits no precision (reuse): "
                                          "conv1_1..relu3_1 reuse tile 2x28 bf16: the rings need"),
        ({**GEN, "profile_batches": [128]}, "kernels.generated.0.profile_batches: [128] not among its batches; allowed: 1, 64"),
    ],
)  # fmt: skip
def test_generated_entry_errors_are_one_line(config, entry, expected):
    config["kernels"]["generated"] = [entry]
    with pytest.raises(ConfigError) as err:
        check_config(config)
    assert "\n" not in str(err.value)
    assert str(err.value).startswith(expected), str(err.value)


def test_generated_entries_checked_once_per_group_and_against_the_stages_range(config):
    config["kernels"]["generated"] = [GEN, {**GEN, "tile_sizes": [2]}]
    with pytest.raises(ConfigError, match=r"^kernels.generated.1: vgg_e.first5 has an entry already"):
        check_config(config)
    config["kernels"]["generated"] = [GEN]
    config["networks"]["vgg_e"]["groups"]["first5"] = ["conv1_1", "pool2"]  # the stages read config/config.yaml's
    with pytest.raises(ConfigError, match=r"^kernels.generated.0: vgg_e.first5 is \['conv1_1', 'pool2'\] here but "
                                          r"\['conv1_1', 'relu3_1'\] in config/config.yaml"):  # fmt: skip
        check_config(config)


def over_default(name: str) -> dict:
    """config/<name> laid over config/config.yaml section by section, as `--configfile` does, checked."""
    import yaml

    cfg = load_config(ROOT / "config" / "config.yaml")
    for section, values in yaml.safe_load((ROOT / "config" / name).read_text()).items():
        cfg[section].update(values)
    check_config(cfg)
    return cfg


def test_shipped_configs_generate_both_networks(config):
    """Default and full sweep: both networks' groups, every listed tile at a precision it fits."""
    from pipeline.stages.plan import generated_variants

    full = over_default("full.yaml")
    for cfg in (config, full):
        check_config(cfg)
        gen, notes = generated_variants(cfg)
        assert {(e["network"], e["group"]) for _, e in gen} == {("alexnet", "front"), ("vgg_e", "first5")}
        assert all("left out at fp32" in n or "left out at tf32" in n for n in notes)  # 16-bit maps fit every listed tile
    names = [n for n, _ in generated_variants(full)[0]]
    assert "vgg_e.first5.fused-reuse-t4x14-gen-bf16" in names and "vgg_e.first5.fused-reuse-t4x14-gen" not in names
    assert "vgg_e.first5.vendor-compile-bf16" in names and "fused-recompute-t4x7-gen-fp16" in names


def test_tf32_config_plans_the_hand_written_tf32_variants():
    """config/tf32.yaml over the default: the hand-written TF32 kernels at the tiles that fit FP32
    maps, lbl-tf32 and the TF32 anchor, no generated kernels; config/full.yaml holds the same TF32
    variants beside the other precisions' (its 2x7 and 4x7 are 16-bit tiles, left out at tf32)."""
    from pipeline.stages.plan import kernel_variants

    tf32 = ["lbl-tf32", "fused-reuse-t1x7-tf32", "fused-reuse-t2x13-tf32", "fused-recompute-t1x7-tf32",
            "fused-recompute-t2x13-tf32", "vendor-cl-tf32", "vendor-compile-tf32"]  # fmt: skip
    assert kernel_variants(over_default("tf32.yaml")) == tf32
    full = kernel_variants(over_default("full.yaml"))
    assert set(tf32) <= set(full) and "fused-reuse-t2x7-fp16" in full and "fused-reuse-t2x7-tf32" not in full
    assert "fused-reuse-t2x5-tf32" in full


def test_bf16_config_plans_both_16_bit_precisions_at_the_2x13_tile():
    """config/bf16.yaml over the default: FP16 and BF16 side by side (issue 12 compares them), the
    2x13 kernels of both strategies, their lbl and torch.compile, at batches 1 and 128."""
    from pipeline.stages.plan import kernel_variants

    cfg = over_default("bf16.yaml")
    assert kernel_variants(cfg) == [
        f"{v}-{p}" for p in ("fp16", "bf16")
        for v in ("lbl", "fused-reuse-t2x13", "fused-recompute-t2x13", "vendor-compile")
    ]  # fmt: skip
    assert cfg["kernels"]["batches"] == [1, 128] and cfg["kernels"]["generated"] == []


def test_a_generated_tile_that_misses_the_configured_precisions_is_left_out_with_a_note(config):
    """An fp32-only run of the default config: vgg_e's 4x14 runs at 16 bits only, so at fp32 it is
    left out (a note), not an error; its lbl-gen and 2x7 variants still run."""
    from pipeline.stages.plan import generated_variants

    config["kernels"].update(precisions=["fp32"], tile_sizes=["2x7"])
    check_config(config)
    gen, notes = generated_variants(config)
    assert notes == ["kernels.generated vgg_e.first5: tile 4x14 left out at fp32 (reuse, recompute): its rings "
                     "exceed the shared memory of a block"]  # fmt: skip
    assert "vgg_e.first5.fused-reuse-t2x7-gen" in dict(gen) and not any("4x14" in n for n, _ in gen)
