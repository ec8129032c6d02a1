"""Network files: a bad one fails with one line naming the file, the layer and the field."""

import pytest
import yaml

from pipeline.core.networks import LAYER_FIELDS, NETWORK_DIR, NetworkError, available_networks, load_network


@pytest.fixture
def alexnet():
    return yaml.safe_load((NETWORK_DIR / "alexnet.yaml").read_text())


def layer(data, name):
    return next(l for l in data["layers"] if l["name"] == name)


def load_error(tmp_path, data, stem="alexnet"):
    """Write ``data`` to <tmp>/<stem>.yaml, load it, and return the one-line error (with the path)."""
    path = tmp_path / f"{stem}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(NetworkError) as err:
        load_network(path)
    line = str(err.value)
    assert "\n" not in line
    assert line.startswith(f"{path}: "), line
    return line[len(f"{path}: ") :]


def test_shipped_networks_load():
    assert available_networks() == ["alexnet", "vgg_e"]
    for name in available_networks():
        assert load_network(name).name == name


def test_fields_table_covers_every_layer_type():
    assert set(LAYER_FIELDS) == {"conv", "relu", "lrn", "maxpool", "fc"}


@pytest.mark.parametrize(
    "change, expected",
    [
        # 1. unknown field: names the layer, the field and what the type allows
        (lambda d: layer(d, "conv1").update(kernal=3),
         "layer 'conv1' (conv): unknown field 'kernal'; allowed: out_channels, kernel, stride, pad, groups"),
        # fields of another type are unknown for this one
        (lambda d: layer(d, "pool1").update(groups=2),
         "layer 'pool1' (maxpool): unknown field 'groups'; allowed: kernel, stride, pad"),
        (lambda d: layer(d, "conv1").update(alpha=1.0e-4),
         "layer 'conv1' (conv): unknown field 'alpha'; allowed: out_channels, kernel, stride, pad, groups"),
        (lambda d: layer(d, "relu1").update(kernel=3),
         "layer 'relu1' (relu): unknown field 'kernel'; allowed: none besides name, type"),
        (lambda d: layer(d, "fc6").update(kernel=6),
         "layer 'fc6' (fc): unknown field 'kernel'; allowed: out_channels"),
        # 2. missing required field (a conv without kernel used to be taken as 1x1)
        (lambda d: layer(d, "conv1").pop("kernel"),
         "layer 'conv1' (conv): missing field 'kernel'; required: out_channels, kernel"),
        (lambda d: layer(d, "conv3").pop("out_channels"), "layer 'conv3' (conv): missing field 'out_channels'"),
        (lambda d: layer(d, "fc7").pop("out_channels"), "layer 'fc7' (fc): missing field 'out_channels'"),
        (lambda d: layer(d, "pool2").pop("kernel"), "layer 'pool2' (maxpool): missing field 'kernel'"),
        (lambda d: layer(d, "conv1").update(type="pool"),
         "layer 'conv1' has type 'pool'; allowed: conv, relu, lrn, maxpool, fc"),
        (lambda d: d["layers"][3].pop("name"), "layer 4 is not a mapping with a name"),
        (lambda d: layer(d, "conv3").update(name="conv2"), "layer name 'conv2' appears 2 times"),
        # 3. top-level keys
        (lambda d: d.update(layer=[]), "unknown key 'layer'; allowed: name, source, input, layers"),
        (lambda d: d.pop("input"), "missing key 'input'; required: name, input, layers"),
        (lambda d: d["input"].update(depth=1), "input: unknown key 'depth'; allowed: channels, height, width"),
        (lambda d: d["input"].pop("width"), "input: missing key 'width'; required: channels, height, width"),
        (lambda d: d.update(layers=[]), "layers must be a non-empty list"),
        # 4. shape errors carry the path
        (lambda d: layer(d, "conv1").update(kernel=300),
         "layer 'conv1' (300x300/4 pad 0) does not fit its 227x227 input"),
        (lambda d: layer(d, "conv2").update(groups=3),
         "layer 'conv2': groups=3 must divide in_channels=96 and out_channels=256"),
        # 5. non-positive or wrongly typed numbers
        (lambda d: layer(d, "pool1").update(kernel=0), "layer 'pool1' (maxpool): kernel: 0 must be > 0"),
        (lambda d: layer(d, "conv1").update(stride=-1), "layer 'conv1' (conv): stride: -1 must be > 0"),
        (lambda d: layer(d, "conv2").update(pad=-2), "layer 'conv2' (conv): pad: -2 must be >= 0"),
        (lambda d: layer(d, "conv1").update(out_channels="96"), "layer 'conv1' (conv): out_channels: '96' is not an integer"),
        (lambda d: layer(d, "conv1").update(kernel=3.0), "layer 'conv1' (conv): kernel: 3.0 is not an integer"),
        (lambda d: layer(d, "conv1").update(groups=True), "layer 'conv1' (conv): groups: True is not an integer"),
        (lambda d: layer(d, "norm1").update(alpha="1e-4"),
         "layer 'norm1' (lrn): alpha: '1e-4' is not a number (write 1.0e-4, not 1e-4)"),
        (lambda d: layer(d, "norm1").update(beta=0), "layer 'norm1' (lrn): beta: 0 must be > 0"),
        (lambda d: d["input"].update(height=0), "input height: 0 must be > 0"),
    ],
)  # fmt: skip
def test_bad_network_file_is_one_line(tmp_path, alexnet, change, expected):
    change(alexnet)
    line = load_error(tmp_path, alexnet)
    assert line.startswith(expected), line


def test_not_a_mapping(tmp_path):
    assert load_error(tmp_path, [1, 2]) == "not a mapping; keys: name, source, input, layers"


def test_name_must_match_the_file_name(tmp_path, alexnet):
    assert (
        load_error(tmp_path, alexnet, stem="alexnet2")
        == "name 'alexnet' differs from the file name 'alexnet2'"
    )


def test_lrn_and_relu_need_no_fields(tmp_path, alexnet):
    for name in ("norm1", "norm2"):
        for field in ("local_size", "alpha", "beta", "k"):
            layer(alexnet, name).pop(field)
    path = tmp_path / "alexnet.yaml"
    path.write_text(yaml.safe_dump(alexnet))
    assert load_network(path).layers[2].local_size == 5  # Layer's default


def test_yaml_with_inline_typo_names_the_file(tmp_path):
    """The issue's example as a person would write it: a flow-style layer with `kernal`."""
    text = (NETWORK_DIR / "vgg_e.yaml").read_text()
    typo = text.replace(
        "{name: conv2_1, type: conv, out_channels: 128, kernel:",
        "{name: conv2_1, type: conv, out_channels: 128, kernal:",
    )
    assert typo != text
    (tmp_path / "vgg_e.yaml").write_text(typo)
    with pytest.raises(NetworkError) as err:
        load_network(tmp_path / "vgg_e.yaml")
    assert str(err.value) == (
        f"{tmp_path / 'vgg_e.yaml'}: layer 'conv2_1' (conv): unknown field 'kernal'; "
        "allowed: out_channels, kernel, stride, pad, groups"
    )
