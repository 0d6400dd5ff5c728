"""Training configs: schema, YAML loading with overrides, clear validation errors."""

from scseg.config.load import apply_overrides, config_from_dict, dump_config, load_config
from scseg.config.schema import SLICE_AXIS_INDEX, Config

__all__ = ["SLICE_AXIS_INDEX", "Config", "apply_overrides", "config_from_dict", "dump_config", "load_config"]
