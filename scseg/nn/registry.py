"""Name -> architecture registry and the one entry point :func:`create_model`."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from monai.networks.nets import BasicUNet
from torch import nn

from scseg.nn.nets import DenseNet, ResUNet, SDNet, UNet

ModelT = TypeVar("ModelT", bound=type[nn.Module])

MODEL_REGISTRY: dict[str, type[nn.Module]] = {}
# models assembled from trained ones (a multi-view model): loadable by name, not listed as architectures
COMPOSITE_MODELS: set[str] = set()
# other libraries' networks, trainable by name for side-by-side comparisons; they take no ``se``
BASELINE_MODELS: set[str] = set()


def register_model(name: str, composite: bool = False, baseline: bool = False) -> Callable[[ModelT], ModelT]:
    """Class decorator adding an architecture to :data:`MODEL_REGISTRY` under ``name``.

    ``composite``: a model made of trained models (not an architecture to train or count);
    ``baseline``: another library's network without SE blocks, for comparisons. Both are left out
    of :func:`available_models` (the SE architectures).

    Example:
        >>> @register_model("my_unet")  # doctest: +SKIP
        ... class MyUNet(UNet): ...
    """

    def add(cls: ModelT) -> ModelT:
        key = name.lower()
        if key in MODEL_REGISTRY and MODEL_REGISTRY[key] is not cls:
            raise ValueError(f"a model named {key!r} is already registered ({MODEL_REGISTRY[key].__name__}).")
        MODEL_REGISTRY[key] = cls
        if composite:
            COMPOSITE_MODELS.add(key)
        if baseline:
            BASELINE_MODELS.add(key)
        return cls

    return add


for _name, _cls in (("unet", UNet), ("sdnet", SDNet), ("densenet", DenseNet), ("resunet", ResUNet)):
    register_model(_name)(_cls)
# MONAI's plain U-Net, the usual baseline (``features``: six widths, the last one the decoder's output)
register_model("basicunet", baseline=True)(BasicUNet)


def available_models() -> list[str]:
    """Registered SE architecture names (composite and baseline models left out)."""
    return sorted(k for k in MODEL_REGISTRY if k not in COMPOSITE_MODELS | BASELINE_MODELS)


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def model_class(name: str) -> type[nn.Module]:
    """The registered architecture class of ``name``.

    Raises:
        ValueError: unknown name, with the closest registered name as a suggestion.
    """
    key = str(name).lower()
    if key not in MODEL_REGISTRY:
        raise ValueError(
            f"unknown model {name!r}{_did_you_mean(key, available_models())}; "
            f"available: {', '.join(available_models())}."
        )
    return MODEL_REGISTRY[key]


# what create_model passes itself; every other constructor argument is an architecture option
_STRUCTURAL = ("self", "spatial_dims", "in_channels", "out_channels")


def model_options(name: str) -> dict[str, inspect.Parameter]:
    """The architecture options of ``name``: its constructor's keyword arguments (the constructor's
    signature is the one declaration of what a model takes)."""
    signature = inspect.signature(model_class(name).__init__)
    return {k: p for k, p in signature.parameters.items() if k not in _STRUCTURAL}


def check_model_options(name: str, options: dict[str, Any]) -> None:
    """Raise ValueError for an option ``name``'s constructor does not take, suggesting the closest.

    A constructor with ``**kwargs`` takes anything (it checks its own arguments).
    """
    params = model_options(name)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    known = [k for k, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL]
    for key in options:
        if key not in known:
            raise ValueError(
                f"{key!r} is not an option of model {name!r}{_did_you_mean(key, known)}; "
                f"it takes: {', '.join(known)}."
            )


def shared_options(name: str, other: str) -> set[str]:
    """Options that mean the same in both architectures (same name and declared type), e.g. ``se``,
    ``norm``; a width like ``features`` that is a list in one and a number in the other is not."""
    a, b = model_options(name), model_options(other)
    return {k for k in a.keys() & b.keys() if str(a[k].annotation) == str(b[k].annotation)}


def create_model(
    name: str, spatial_dims: int, in_channels: int, out_channels: int, **kwargs: Any
) -> nn.Module:
    """Build a registered architecture by name.

    Args:
        name: ``unet``, ``sdnet``, ``densenet`` or ``resunet`` (or anything added with
            :func:`register_model`).
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: number of classes including background.
        **kwargs: architecture options, e.g. ``se="scse"``, ``se_aggregation="max"``,
            ``se_squeeze="max"``, ``se_gate="tanh"``, ``se_integration="pre"`` (``resunet``),
            ``se_positions=("encoder", "decoder")``, ``norm="instance"``, ``features=...``.

    Raises:
        ValueError: unknown name or an option the architecture does not take.

    Example:
        >>> net = create_model("sdnet", 2, 1, 4, se="cse", features=16)
        >>> type(net).__name__
        'SDNet'
    """
    cls = model_class(name)
    key = str(name).lower()
    check_model_options(key, kwargs)
    try:
        return cls(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels, **kwargs)
    except TypeError as err:
        raise ValueError(f"model {key!r} ({cls.__name__}) rejected its arguments: {err}") from err
