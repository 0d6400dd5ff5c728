"""Config loading: overrides, validation errors with dotted key paths and the file name."""

from __future__ import annotations

from pathlib import Path

import pytest

from scseg.config import load_config
from scseg.config.load import apply_overrides, parse_override
from scseg.errors import ConfigError
from tests.conftest import CONFIGS


def test_valid_config_loads_with_defaults(tiny_config: dict, write_config) -> None:
    config = load_config(write_config(tiny_config))
    assert config.num_classes == 4
    assert config.spatial_dims == 3
    assert config.roi_size == [16, 16, 16]
    assert config.optimizer.name == "adamw"


def test_overrides_parse_yaml_values_and_create_sections() -> None:
    assert parse_override("train.max_epochs=5") == (["train", "max_epochs"], 5)
    assert parse_override("mode.patch_size=[32, 32, 16]") == (["mode", "patch_size"], [32, 32, 16])
    raw = apply_overrides({"train": {"seed": 1}}, ["train.seed=7", "model.se=cse"])
    assert raw == {"train": {"seed": 7}, "model": {"se": "cse"}}
    with pytest.raises(ConfigError, match="expected key.path=value"):
        parse_override("train.max_epochs")


@pytest.mark.parametrize(
    ("override", "key", "message"),
    [
        ("train.max_epoks=3", "train.max_epoks", "unknown key"),
        ("train.max_epochs=many", "train.max_epochs", "valid integer"),
        ("model.se=xse", "model.se", "se must be one of"),
        ("model.name=unett", "model.name", "did you mean 'unet'"),
        ("model.bse_features=8", "model", "did you mean 'base_features'"),
        ("model.depth=3", "model", "'depth' is not an option of model 'unet'"),
        ("data.val_fraction=1.5", "data.val_fraction", "less than 1"),
        ("mode.patch_size=[32, 32]", "mode", "patch_size needs 3 values"),
        ("bogus_section.x=1", "bogus_section", "unknown key"),
    ],
)
def test_bad_values_are_reported_with_dotted_key_and_file(
    tiny_config: dict, write_config, override: str, key: str, message: str
) -> None:
    path = write_config(tiny_config)
    with pytest.raises(ConfigError) as info:
        load_config(path, [override])
    text = str(info.value)
    assert str(path) in text and key in text and message in text


def test_missing_data_root_is_reported(tiny_config: dict, write_config, tmp_path: Path) -> None:
    tiny_config["data"]["root"] = str(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match=r"data.root: folder .*nowhere does not exist"):
        load_config(write_config(tiny_config))


def test_missing_config_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.yaml")


def test_model_dims_must_agree_with_mode(tiny_config: dict, write_config) -> None:
    with pytest.raises(ConfigError, match="model.spatial_dims=2 disagrees"):
        load_config(write_config(tiny_config), ["model.spatial_dims=2"])


def test_cpu_bfloat16_training_is_refused_for_3d(tiny_config: dict, write_config) -> None:
    """torch's CPU bf16 Conv3d weight gradient is wrong on 2x2x2 maps (benchmarks/cpu_bf16_gradients.py)."""
    path = write_config(tiny_config)
    with pytest.raises(ConfigError, match=r"train.cpu_amp: bfloat16 training on CPU is for 2D models only"):
        load_config(path, ["train.cpu_amp=true"])
    slices = ["mode.type=2d", "mode.patch_size=[16, 16]", "train.cpu_amp=true"]
    assert load_config(path, slices).train.cpu_amp


@pytest.mark.parametrize("label_names", [[], {0: "bg", 1: "a"}, {1: "a", 3: "b"}, ["a", "a"]])
def test_bad_label_names_are_rejected(tiny_config: dict, write_config, label_names) -> None:
    tiny_config["data"]["label_names"] = label_names
    with pytest.raises(ConfigError, match="data.label_names"):
        load_config(write_config(tiny_config))


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_every_shipped_config_validates(name: str, shared_data: Path) -> None:
    config = load_config(CONFIGS / name)
    assert config.data.structure_names


def test_instance_norm_with_a_patch_that_pools_to_one_voxel_is_rejected(
    tiny_config: dict, write_config
) -> None:
    with pytest.raises(ConfigError, match="mode.patch_size .* does not fit model: UNet uses instance norm"):
        load_config(write_config(tiny_config), ["model.norm=instance"])  # 16^3 patches -> 1 voxel
    assert load_config(write_config(tiny_config), ["model.norm=instance", "mode.patch_size=[16, 16, 32]"])


def test_model_options_come_from_the_architecture(tiny_config: dict, write_config) -> None:
    """Per-architecture keys are the constructor's: sdnet takes depth, unet does not; the network's
    own checks run at load time (pe needs 3D) and its defaults apply to unset options."""
    path = write_config(tiny_config)
    config = load_config(
        path, ["model.name=sdnet", "model.base_features=null", "model.depth=3", "model.features=8"]
    )
    assert config.model.options()["depth"] == 3
    with pytest.raises(ConfigError, match="model.se: .*3D volumes only"):
        load_config(path, ["model.se=pe", "mode.type=2d", "mode.patch_size=[16, 16]"])
    config = load_config(path, ["model.norm=null"])
    assert "norm" not in config.model.options(), "null: unset, the architecture's default applies"


def test_a_registered_model_is_reachable_from_yaml(tiny_config: dict, write_config) -> None:
    from scseg.nn import MODEL_REGISTRY, UNet, register_model

    @register_model("tiny_unet_for_test")
    class TinyUNet(UNet):
        def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, width: int = 4) -> None:
            super().__init__(spatial_dims, in_channels, out_channels, base_features=width, norm="batch")

    try:
        tiny_config["model"] = {"name": "tiny_unet_for_test", "width": 2}
        config = load_config(write_config(tiny_config))
        assert config.model.name == "tiny_unet_for_test" and config.model.options() == {"width": 2}
        tiny_config["model"]["widht"] = 3
        with pytest.raises(ConfigError, match="did you mean 'width'"):
            load_config(write_config(tiny_config))
    finally:
        MODEL_REGISTRY.pop("tiny_unet_for_test")
