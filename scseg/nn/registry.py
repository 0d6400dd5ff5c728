"""Name -> architecture registry and the one entry point :func:`create_model`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from scseg.nn.nets import DenseNet, SDNet, UNet

ModelT = TypeVar("ModelT", bound=type[nn.Module])

MODEL_REGISTRY: dict[str, type[nn.Module]] = {}


def register_model(name: str) -> Callable[[ModelT], ModelT]:
    """Class decorator adding an architecture to :data:`MODEL_REGISTRY` under ``name``.

    Example:
        >>> @register_model("my_unet")  # doctest: +SKIP
        ... class MyUNet(UNet): ...
    """

    def add(cls: ModelT) -> ModelT:
        key = name.lower()
        if key in MODEL_REGISTRY and MODEL_REGISTRY[key] is not cls:
            raise ValueError(f"a model named {key!r} is already registered ({MODEL_REGISTRY[key].__name__}).")
        MODEL_REGISTRY[key] = cls
        return cls

    return add


for _name, _cls in (("unet", UNet), ("sdnet", SDNet), ("densenet", DenseNet)):
    register_model(_name)(_cls)


def available_models() -> list[str]:
    """Registered architecture names."""
    return sorted(MODEL_REGISTRY)


def create_model(
    name: str, spatial_dims: int, in_channels: int, out_channels: int, **kwargs: Any
) -> nn.Module:
    """Build a registered architecture by name.

    Args:
        name: ``unet``, ``sdnet`` or ``densenet`` (or anything added with :func:`register_model`).
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: number of classes including background.
        **kwargs: architecture options, e.g. ``se="scse"``, ``se_aggregation="max"``,
            ``se_positions=("encoder", "decoder")``, ``norm="instance"``, ``features=...``.

    Raises:
        ValueError: unknown name or an option the architecture does not take.

    Example:
        >>> net = create_model("sdnet", 2, 1, 4, se="cse", features=16)
        >>> type(net).__name__
        'SDNet'
    """
    key = str(name).lower()
    if key not in MODEL_REGISTRY:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(available_models())}.")
    cls = MODEL_REGISTRY[key]
    try:
        return cls(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels, **kwargs)
    except TypeError as err:
        raise ValueError(f"model {key!r} ({cls.__name__}) rejected its arguments: {err}") from err
