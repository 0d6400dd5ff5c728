"""The model artefact: what a trained model is on disk, independent of its training data.

- :mod:`~scseg.artefact.spec`: :class:`ModelSpec`, the inference-only description (``model.yaml``);
- :mod:`~scseg.artefact.checkpoint`: the typed checkpoint (weights + spec [+ training state]);
- :mod:`~scseg.artefact.layout`: run-directory and bundle layout, :func:`load_model`;
- :mod:`~scseg.artefact.network`: the network built from a spec.
"""

from scseg.artefact.checkpoint import Checkpoint, TrainingState, load_checkpoint, save_checkpoint
from scseg.artefact.layout import LoadedModel, is_bundle, is_run_dir, load_model, write_model_spec
from scseg.artefact.network import build_network, load_network
from scseg.artefact.spec import ModelSpec, NetworkSpec, Provenance

__all__ = [
    "Checkpoint",
    "LoadedModel",
    "ModelSpec",
    "NetworkSpec",
    "Provenance",
    "TrainingState",
    "build_network",
    "is_bundle",
    "is_run_dir",
    "load_checkpoint",
    "load_model",
    "load_network",
    "save_checkpoint",
    "write_model_spec",
]
