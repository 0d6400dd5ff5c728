"""Export a trained run as a MONAI bundle (``scseg export-bundle``).

The bundle follows the MONAI Bundle specification: ``configs/metadata.json`` (versions, labels as
``channel_def``, references), ``configs/inference.json`` (the network, the same deterministic
preprocessing as ``scseg predict``, MONAI's sliding-window / slice inferer, softmax, inversion onto
the input grid, argmax, label values, NIfTI writer), ``models/model.pt`` (state dict) and optionally
``models/model.ts``, plus ``docs/README.md``. ``configs/scseg_config.yaml`` keeps the run's config so
that scseg itself (``scseg predict``, ``scseg label serve``) can load the bundle like a run dir.

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
from scseg.bundle.readme import bundle_readme
from scseg.config.schema import SLICE_AXIS_INDEX, Config
from scseg.data.transforms import preprocessing_spec
from scseg.engine.predictor import BUNDLE_CONFIG, BUNDLE_WEIGHTS, Predictor, is_bundle
from scseg.errors import RunDirError
from scseg.io.atomic import AtomicDirectory

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


def _transform_configs(config: Config) -> list[dict[str, Any]]:
    return [{"_target_": _target(cls), **kwargs} for cls, kwargs in preprocessing_spec(config, ("image",))]


def _network_def(config: Config, model: torch.nn.Module) -> dict[str, Any]:
    kwargs = json.loads(json.dumps(config.model.create_kwargs()))  # tuples -> lists, plain JSON
    return {
        "_target_": _target(type(model)),
        "spatial_dims": config.spatial_dims,
        "in_channels": config.model.in_channels,
        "out_channels": config.num_classes,
        **kwargs,
    }


def _inferer(config: Config) -> dict[str, Any]:
    common = {
        "sw_batch_size": config.inference.sw_batch_size,
        "overlap": config.inference.overlap,
        "mode": config.inference.blend,
    }
    if config.spatial_dims == 2:
        # a 2D network on every slice along the training axis: MONAI's SliceInferer does what
        # `scseg predict` does with one-slice-thick sliding windows
        axis = SLICE_AXIS_INDEX[config.mode.slice_axis]
        return {"_target_": "SliceInferer", "roi_size": config.roi_size, "spatial_dim": axis, **common}
    return {"_target_": "SlidingWindowInferer", "roi_size": config.roi_size, **common}


def _postprocessing(config: Config, label_values: list[int]) -> dict[str, Any]:
    classes = list(range(config.num_classes))
    targets = [0, *label_values]
    dtype = "uint8" if max(targets) < 256 else "int16"
    transforms: list[dict[str, Any]] = [
        {"_target_": "Activationsd", "keys": "pred", "softmax": True},
        # probabilities back onto the input grid (linear), then argmax: as `scseg predict`
        {
            "_target_": "Invertd",
            "keys": "pred",
            "transform": "@preprocessing",
            "orig_keys": "image",
            "nearest_interp": False,
            "to_tensor": True,
        },
        {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
    ]
    if targets != classes:
        transforms.append(
            {
                "_target_": "MapLabelValued",
                "keys": "pred",
                "orig_labels": classes,
                "target_labels": targets,
                "dtype": dtype,
            }
        )
    transforms.append(
        {
            "_target_": "SaveImaged",
            "keys": "pred",
            "output_dir": "@output_dir",
            "output_postfix": "seg",
            "output_dtype": dtype,
            "resample": False,
            "separate_folder": False,
            "print_log": False,
        }
    )
    return {"_target_": "Compose", "transforms": transforms}


def inference_config(config: Config, model: torch.nn.Module, label_values: list[int]) -> dict[str, Any]:
    """``configs/inference.json``: a MONAI bundle inference workflow equivalent to ``scseg predict``."""
    return {
        "imports": ["$import glob", "$import os", "$import scseg"],
        "bundle_root": ".",
        "output_dir": "$@bundle_root + '/eval'",
        "dataset_dir": "/workspace/data",
        "datalist": "$list(sorted(glob.glob(os.path.join(@dataset_dir, '*.nii*'))))",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "network_def": _network_def(config, model),
        "network": "$@network_def.to(@device)",
        "preprocessing": {"_target_": "Compose", "transforms": _transform_configs(config)},
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
        "inferer": _inferer(config),
        "postprocessing": _postprocessing(config, label_values),
        "handlers": [
            {
                "_target_": "CheckpointLoader",
                "load_path": "$@bundle_root + '/models/model.pt'",
                "load_dict": {"model": "@network"},
                "map_location": "@device",
            },
            {"_target_": "StatsHandler", "iteration_log": False},
        ],
        "evaluator": {
            "_target_": "SupervisedEvaluator",
            "device": "@device",
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


def _modality(config: Config) -> tuple[str, str]:
    """(format, modality) for network_data_format: CT windowing means Hounsfield units."""
    if config.preprocessing.intensity.kind == "ct_window":
        return "hounsfield", "CT"
    return "magnitude", "MR"


def _required_packages() -> dict[str, str]:
    """What running the bundle needs besides MONAI: scseg (network class), nibabel, and
    pytorch-ignite for the evaluator (the ``bundle`` extra; left out when it is not installed)."""
    packages = {"scseg": __version__, "nibabel": nibabel.__version__}
    if importlib.util.find_spec("ignite") is not None:
        packages["pytorch-ignite"] = importlib.metadata.version("pytorch-ignite")
    return packages


def metadata(config: Config, predictor: Predictor) -> dict:
    """``configs/metadata.json`` per the MONAI Bundle specification."""
    dice = predictor.validation_dice
    names = predictor.label_names
    m = config.model
    fmt, modality = _modality(config)
    dims = config.spatial_dims
    today = dt.date.today().isoformat()
    how = f"{dims}D {m.name} with se={m.se}" + (
        f", applied slice by slice along the {config.mode.slice_axis} axis" if dims == 2 else ""
    )
    tensor = {"type": "image", "dtype": "float32", "is_patch_data": True, "spatial_shape": config.roi_size}
    references = [*REFERENCES, QUICKNAT] if m.name == "densenet" else list(REFERENCES)
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
        "name": f"scseg {config.data.root.name} {dims}D {m.name} {m.se}",
        "task": f"Segmentation of {', '.join(names)}",
        "description": (
            f"A {how}, trained with scseg {__version__} on {config.data.root.name} "
            f"(epoch {predictor.epoch}). Squeeze & excitation recalibration after Roy et al. 2018/2019."
        ),
        "authors": "scseg developers",
        "copyright": "Copyright (c) scseg developers",
        "license": "Apache-2.0 for the bundle files; check the training data's licence before using the weights",
        "data_source": str(config.data.root.name),
        "data_type": "nibabel",
        "image_classes": f"{m.in_channels}-channel {modality} image, preprocessed as in configs/inference.json",
        "label_classes": "; ".join(f"{v} is {n}" for v, n in zip(predictor.label_values, names, strict=True))
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
                    "num_channels": m.in_channels,
                    "value_range": [],
                    "channel_def": {str(c): "image" for c in range(m.in_channels)},
                }
            },
            "outputs": {
                "pred": {
                    **tensor,
                    "format": "segmentation",
                    "num_channels": config.num_classes,
                    "value_range": [0, 1],
                    "channel_def": {"0": "background", **{str(k + 1): n for k, n in enumerate(names)}},
                }
            },
        },
    }


def export_bundle(run_dir: str | Path, out_dir: str | Path, torchscript: bool = False) -> Path:
    """Write the MONAI bundle of a trained run to ``out_dir`` (replaced as a whole, atomically).

    Args:
        run_dir: a run directory written by ``scseg train``.
        out_dir: the bundle folder to write.
        torchscript: also write ``models/model.ts`` (traced, checked against the eager model).

    Returns:
        ``out_dir``.

    Raises:
        RunDirError: ``run_dir`` is not a trained run, or ``out_dir`` is inside it.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if is_bundle(run_dir):
        raise RunDirError(f"{run_dir} is a MONAI bundle already; export-bundle takes a run directory")
    predictor = Predictor(run_dir, device="cpu")
    if out_dir.resolve().is_relative_to(run_dir.resolve()):
        raise RunDirError(f"the bundle folder {out_dir} must not lie inside the run directory {run_dir}")
    config = predictor.config
    model = predictor.model
    with AtomicDirectory(out_dir) as tmp:
        (tmp / "configs").mkdir()
        (tmp / "models").mkdir()
        (tmp / "docs").mkdir()
        meta = metadata(config, predictor)
        (tmp / "configs" / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
        infer = inference_config(config, model, predictor.label_values)
        (tmp / "configs" / "inference.json").write_text(json.dumps(infer, indent=2) + "\n")
        shutil.copyfile(run_dir / "config.yaml", tmp / BUNDLE_CONFIG)
        torch.save(model.state_dict(), tmp / BUNDLE_WEIGHTS)
        if torchscript:
            _save_torchscript(model, config, tmp / "models" / "model.ts", meta)
        (tmp / "docs" / "README.md").write_text(bundle_readme(meta, config, out_dir.name, torchscript))
    return out_dir


def _save_torchscript(model: torch.nn.Module, config: Config, path: Path, meta: dict) -> None:
    """Trace with MONAI's helper, which also checks the traced outputs against the eager model.

    Tracing (not scripting): the SE blocks' size checks are plain Python. The trace is taken at the
    window size, which is what the bundle's sliding-window inferer feeds it; torch warns that
    transposed-convolution output sizes are recorded as constants, which holds for that size.
    """
    import warnings

    from monai.networks.utils import convert_to_torchscript

    example = torch.rand(1, config.model.in_channels, *config.roi_size)
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
