"""Export a trained run as a MONAI bundle (``scseg export-bundle``).

The bundle follows the MONAI Bundle specification: ``configs/metadata.json`` (versions, labels as
``channel_def``, references), ``configs/inference.json``, ``models/model.pt`` (state dict) and
optionally ``models/model.ts``, plus ``docs/README.md``. ``configs/scseg_model.yaml`` is the model
artefact's description, so scseg itself (``scseg predict``, ``scseg label serve``) loads the bundle
like a run dir.

``inference.json`` runs scseg's own components by ``_target_``: the preprocessing rendered from the
same spec as ``scseg predict``'s, :class:`~scseg.engine.inference.ScsegInferer` (the inferer
``scseg predict`` runs) and :class:`~scseg.engine.resample.ToInputGridd` (its slab-wise mapping
back onto the input grid with the model's label values). The bundle and ``scseg predict`` are one
code path by construction, with the same bounded memory.

Example:
    >>> export_bundle("runs/hippo3d", "bundles/hippo3d")                # doctest: +SKIP
    $ python -m monai.bundle run --config_file bundles/hippo3d/configs/inference.json \\
          --bundle_root bundles/hippo3d --dataset_dir images/ --output_dir out/
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import monai
import nibabel
import numpy as np
import torch

from scseg import __version__
from scseg.artefact import LoadedModel, ModelSpec, is_bundle, load_model, load_network, write_model_spec
from scseg.artefact.layout import (
    BUNDLE_INFERENCE,
    BUNDLE_METADATA,
    BUNDLE_MODEL_SPEC,
    BUNDLE_README,
    BUNDLE_TORCHSCRIPT,
    BUNDLE_TRAIN_CONFIG,
    BUNDLE_WEIGHTS,
    RUN_CONFIG,
)
from scseg.bundle.readme import bundle_readme
from scseg.data.transforms import preprocessing_spec
from scseg.engine.inference import ScsegInferer, inferer_args
from scseg.engine.resample import ToInputGridd
from scseg.errors import ConfigError, RunDirError
from scseg.io.atomic import AtomicDirectory
from scseg.nn.registry import COMPOSITE_MODELS

# metadata.json names the official schema; `python -m monai.bundle verify_metadata` downloads it
META_SCHEMA_URL = (
    "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20240725.json"
)
REFERENCES = [
    "Roy AG, Navab N, Wachinger C. Concurrent Spatial and Channel Squeeze & Excitation in Fully "
    "Convolutional Networks. MICCAI 2018, LNCS 11070, pp. 421-429.",
    "Roy AG, Navab N, Wachinger C. Recalibrating Fully Convolutional Networks with Spatial and Channel "
    "'Squeeze and Excitation' Blocks. IEEE Transactions on Medical Imaging 38(2):540-549, 2019.",
]
QUICKNAT = (
    "Roy AG, Conjeti S, Navab N, Wachinger C. QuickNAT: A fully convolutional network for quick and "
    "accurate segmentation of neuroanatomy. NeuroImage 186:713-727, 2019."
)


def _target(cls: type) -> str:
    """``_target_`` of a class: MONAI's own transforms by name (the bundle parser finds them)."""
    module = cls.__module__
    if module.startswith("monai.transforms"):
        return cls.__name__
    return f"{module}.{cls.__qualname__}"


def _transform_configs(spec: ModelSpec) -> list[dict[str, Any]]:
    return [
        {"_target_": _target(cls), **kwargs}
        for cls, kwargs in preprocessing_spec(spec.preprocessing, ("image",))
    ]


def _network_def(spec: ModelSpec, model: torch.nn.Module) -> dict[str, Any]:
    net = spec.network
    return {
        "_target_": _target(type(model)),
        "spatial_dims": net.spatial_dims,
        "in_channels": net.in_channels,
        "out_channels": net.out_channels,
        **json.loads(json.dumps(net.options)),  # tuples -> lists, plain JSON
    }


def _postprocessing(spec: ModelSpec) -> dict[str, Any]:
    dtype = "uint8" if max(spec.labels.values) < 256 else "uint16"
    transforms: list[dict[str, Any]] = [
        # the probabilities back onto the input grid, argmax, label values: as `scseg predict`
        {"_target_": _target(ToInputGridd), "keys": "pred", "label_values": list(spec.labels.values)},
        {
            "_target_": "SaveImaged",
            "keys": "pred",
            "output_dir": "@output_dir",
            "output_postfix": "seg",
            "output_dtype": dtype,
            "resample": False,
            "separate_folder": False,
            "print_log": False,
        },
    ]
    return {"_target_": "Compose", "transforms": transforms}


def inference_config(spec: ModelSpec, model: torch.nn.Module) -> dict[str, Any]:
    """``configs/inference.json``: a MONAI bundle inference workflow running ``scseg predict``'s own
    preprocessing, inferer and inversion."""
    return {
        "imports": ["$import glob", "$import os", "$import scseg"],
        "bundle_root": ".",
        "output_dir": "$@bundle_root + '/eval'",
        "dataset_dir": "/workspace/data",
        "datalist": "$list(sorted(glob.glob(os.path.join(@dataset_dir, '*.nii*'))))",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "network_def": _network_def(spec, model),
        "network": "$@network_def.to(@device)",
        "preprocessing": {"_target_": "Compose", "transforms": _transform_configs(spec)},
        "dataset": {
            "_target_": "Dataset",
            "data": "$[{'image': i} for i in @datalist]",
            "transform": "@preprocessing",
        },
        "dataloader": {
            "_target_": "DataLoader",
            "dataset": "@dataset",
            "batch_size": 1,
            "shuffle": False,
            "num_workers": 0,
        },
        # windows on the device, the whole-volume probabilities on the CPU (as `scseg predict`)
        "inferer": {"_target_": _target(ScsegInferer), **inferer_args(spec), "sw_device": "@device"},
        "postprocessing": _postprocessing(spec),
        "handlers": [
            {
                "_target_": "CheckpointLoader",
                "load_path": f"$@bundle_root + '/{BUNDLE_WEIGHTS.as_posix()}'",
                "load_dict": {"model": "@network"},
                "map_location": "@device",
            },
            {"_target_": "StatsHandler", "iteration_log": False},
        ],
        "evaluator": {
            "_target_": "SupervisedEvaluator",
            "device": "cpu",  # where batches and outputs live; the inferer moves windows to @device
            "val_data_loader": "@dataloader",
            "network": "@network",
            "inferer": "@inferer",
            "postprocessing": "@postprocessing",
            "val_handlers": "@handlers",
            "amp": "$torch.cuda.is_available()",
        },
        "initialize": ["$monai.utils.set_determinism(seed=0)"],
        "run": ["$@evaluator.run()"],
    }


def _modality(spec: ModelSpec) -> tuple[str, str]:
    """(format, modality) for network_data_format: CT windowing means Hounsfield units."""
    if spec.preprocessing.intensity.kind in ("ct_window", "ct_zscore"):
        return "hounsfield", "CT"
    return "magnitude", "MR"


def _required_packages() -> dict[str, str]:
    """What running the bundle needs besides MONAI: scseg (network class), nibabel, and
    pytorch-ignite for the evaluator (the ``bundle`` extra; left out when it is not installed)."""
    packages = {"scseg": __version__, "nibabel": nibabel.__version__}
    if importlib.util.find_spec("ignite") is not None:
        packages["pytorch-ignite"] = importlib.metadata.version("pytorch-ignite")
    return packages


def _describe(spec: ModelSpec) -> str:
    """``3D unet with se=scse`` (plus the slicing axis for 2D models)."""
    net = spec.network
    how = f"{net.spatial_dims}D {net.name} with se={net.options.get('se', 'default')}"
    if net.spatial_dims == 2:
        how += f", applied slice by slice along the {spec.mode.slice_axis} axis"
    return how


def metadata(loaded: LoadedModel) -> dict:
    """``configs/metadata.json`` per the MONAI Bundle specification."""
    spec = loaded.spec
    dice = loaded.validation_dice
    names, values = spec.labels.names, spec.labels.values
    net = spec.network
    fmt, modality = _modality(spec)
    dataset = spec.provenance.data.dataset if spec.provenance.data else "unrecorded data"
    today = dt.date.today().isoformat()
    tensor = {
        "type": "image",
        "dtype": "float32",
        "is_patch_data": True,
        "spatial_shape": list(spec.inference.roi_size),
    }
    references = [*REFERENCES, QUICKNAT] if net.name == "densenet" else list(REFERENCES)
    eval_metrics = {f"val_dice_{k}": float(v) for k, v in dice.items()}
    if dice:
        eval_metrics["val_mean_dice"] = float(np.mean(list(dice.values())))
    return {
        "schema": META_SCHEMA_URL,
        "version": "0.1.0",
        "changelog": {"0.1.0": f"exported by scseg {__version__} on {today}"},
        "monai_version": monai.__version__,
        "pytorch_version": torch.__version__.split("+")[0],
        "numpy_version": np.__version__,
        "required_packages_version": _required_packages(),
        "name": f"scseg {dataset} {net.spatial_dims}D {net.name} {net.options.get('se', '')}".strip(),
        "task": f"Segmentation of {', '.join(names)}",
        "description": (
            f"A {_describe(spec)}, trained with scseg {spec.versions.get('scseg', '(version unrecorded)')} "
            f"on {dataset} (epoch {loaded.epoch}). Squeeze & excitation recalibration after Roy et al. "
            "2018/2019."
        ),
        "authors": "scseg developers",
        "copyright": "Copyright (c) scseg developers",
        "license": "Apache-2.0 for the bundle files; check the training data's licence before using the weights",
        "data_source": dataset,
        "data_type": "nibabel",
        "image_classes": f"{net.in_channels}-channel {modality} image, preprocessed as in configs/inference.json",
        "label_classes": "; ".join(f"{v} is {n}" for v, n in zip(values, names, strict=True))
        + "; 0 is background",
        "pred_classes": f"{len(names) + 1} channels (softmax): channel 0 background, "
        + ", ".join(f"{k + 1} {n}" for k, n in enumerate(names)),
        "eval_metrics": eval_metrics,
        "intended_use": "Research use only; not a medical device, not for clinical decisions.",
        "references": references,
        "network_data_format": {
            "inputs": {
                "image": {
                    **tensor,
                    "format": fmt,
                    "modality": modality,
                    "num_channels": net.in_channels,
                    "value_range": [],
                    "channel_def": {str(c): "image" for c in range(net.in_channels)},
                }
            },
            "outputs": {
                "pred": {
                    **tensor,
                    "format": "segmentation",
                    "num_channels": net.out_channels,
                    "value_range": [0, 1],
                    "channel_def": {"0": "background", **{str(k + 1): n for k, n in enumerate(names)}},
                }
            },
        },
    }


def _check_destination(source: Path, out_dir: Path) -> None:
    """Refuse a bundle folder inside the model's folder, one that contains the model (replacing it
    would delete the model), or any existing non-empty folder (nothing is ever overwritten)."""
    src, dst = source.resolve(), out_dir.resolve()
    if source.is_dir() and dst.is_relative_to(src):
        raise RunDirError(f"the bundle folder {out_dir} must not lie inside the run directory {source}")
    if src.is_relative_to(dst):
        raise RunDirError(f"the bundle folder {out_dir} contains the model {source}; choose another folder")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise RunDirError(
            f"{out_dir} already exists and is not an empty folder; export-bundle never overwrites: "
            "choose a new folder or remove it first"
        )


def export_bundle(model: str | Path, out_dir: str | Path, torchscript: bool = False) -> Path:
    """Write the MONAI bundle of a trained model to a new folder ``out_dir`` (atomically).

    Args:
        model: a run directory written by ``scseg train``, or a lone checkpoint (``.pt``).
        out_dir: the bundle folder to write.
        torchscript: also write ``models/model.ts`` (traced, checked against the eager model).

    Returns:
        ``out_dir``.

    Raises:
        RunDirError: ``model`` is not a trained model (or already a bundle), or ``out_dir`` is inside
            it, contains it, or is an existing non-empty folder.
    """
    source, out_dir = Path(model), Path(out_dir)
    if is_bundle(source):
        raise RunDirError(f"{source} is a MONAI bundle already; export-bundle takes a run directory")
    loaded = load_model(source)
    _check_destination(source, out_dir)
    spec = loaded.spec
    if torchscript and spec.network.name in COMPOSITE_MODELS:
        raise ConfigError(
            f"--torchscript: a {spec.network.name} model runs its networks through scseg's inferer, so "
            "it has no single traced forward; export it without --torchscript"
        )
    network = load_network(spec.network, loaded.weights, str(loaded.weights_file))
    with AtomicDirectory(out_dir) as tmp:
        for folder in ("configs", "models", "docs"):
            (tmp / folder).mkdir()
        meta = metadata(loaded)
        (tmp / BUNDLE_METADATA).write_text(json.dumps(meta, indent=2) + "\n")
        (tmp / BUNDLE_INFERENCE).write_text(json.dumps(inference_config(spec, network), indent=2) + "\n")
        write_model_spec(tmp / BUNDLE_MODEL_SPEC, spec)
        if source.is_dir() and (source / RUN_CONFIG).is_file():  # the record of the training, not read back
            shutil.copyfile(source / RUN_CONFIG, tmp / BUNDLE_TRAIN_CONFIG)
        torch.save(network.state_dict(), tmp / BUNDLE_WEIGHTS)
        if torchscript:
            _save_torchscript(network, spec, tmp / BUNDLE_TORCHSCRIPT, meta)
        (tmp / BUNDLE_README).write_text(bundle_readme(meta, spec, out_dir.name, torchscript))
    return out_dir


def _save_torchscript(model: torch.nn.Module, spec: ModelSpec, path: Path, meta: dict) -> None:
    """Trace with MONAI's helper, which also checks the traced outputs against the eager model.

    Tracing (not scripting): the SE blocks' size checks are plain Python. The trace is taken at the
    window size, which is what the bundle's sliding-window inferer feeds it; torch warns that
    transposed-convolution output sizes are recorded as constants, which holds for that size.
    """
    import warnings

    from monai.networks.utils import convert_to_torchscript

    example = torch.rand(1, spec.network.in_channels, *spec.inference.roi_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        convert_to_torchscript(
            model.eval(),
            filename_or_obj=str(path),
            extra_files={"metadata.json": json.dumps(meta).encode()},
            verify=True,
            inputs=[example],
            use_trace=True,
            rtol=1e-4,
            atol=1e-4,
        )
