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
    config["kernels"].update(tile_sizes=["2x7", 4], strategies=["reuse"], precisions=["fp32"])
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
    config["kernels"].update(tile_sizes=[4], precisions=["fp32"])
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
