"""``scseg plan``: read a dataset once and write a training config fitted to it, with its reasons.

Example:
    >>> from scseg.plan.planner import fit_patch
    >>> fit_patch([36.0, 50.0, 35.0], batch=8, memory_gb=4.0)   # hippocampus crops at 1 mm
    [32, 48, 32]
"""

from __future__ import annotations

from pathlib import Path

import yaml

from scseg.config.data_section import DataConfig
from scseg.config.load import config_from_dict
from scseg.errors import ConfigError
from scseg.io.atomic import write_text_atomic
from scseg.plan.fingerprint import Fingerprint, measure
from scseg.plan.planner import Choice, config_from_choices, plan_choices, relative_root


def data_section(data: Path, labels: str | None, config_path: Path) -> dict:
    """The ``data`` section for ``DATA`` (a folder, dataset.json or .csv) and ``--labels``: a label-set
    file (FreeSurfer LUT), ``name,name`` (values 1..K) or ``value:name,...``; default: MSD's
    dataset.json labels."""
    data = Path(data)
    root, dataset = (data, "auto") if data.is_dir() else (data.parent, data.name)
    section: dict = {"root": relative_root(root, config_path), "dataset": dataset, "val_fraction": 0.2}
    if labels and Path(labels).is_file():
        section["label_set"] = str(Path(labels).resolve())
    elif labels:
        items = [item.strip() for item in labels.split(",") if item.strip()]
        if all(":" in item for item in items):
            pairs = sorted((int(v), n.strip()) for v, n in (item.split(":", 1) for item in items))
            section["label_values"] = [v for v, _ in pairs]
            section["label_names"] = [n for _, n in pairs]
        else:
            section["label_names"] = items
    else:
        section["label_names"] = _msd_labels(root / "dataset.json" if data.is_dir() else data)
    return section


def _msd_labels(path: Path) -> list[str]:
    import json

    try:
        labels = json.loads(path.read_text(encoding="utf-8"))["labels"]
        named = {int(v): str(n) for v, n in labels.items() if int(v) != 0}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        named = {}
    if named and sorted(named) != list(range(1, len(named) + 1)):
        raise ConfigError(f"scseg plan: {path} labels are not 1..K; give them with --labels 'value:name,...'")
    if not named:
        raise ConfigError(
            f"scseg plan: {path} names no structures; give them with --labels (a label-set file, "
            "'name,name' for values 1..K, or 'value:name,...')"
        )
    return [named[v] for v in sorted(named)]


def render(raw: dict, fp: Fingerprint, choices: list[Choice], command: str) -> str:
    """The config as YAML, preceded by the fingerprint and every choice with its reason."""
    lines = [f"# Planned by `{command}`", "#", "# Fingerprint of the data:"]
    for key, value in fp.to_dict().items():
        lines.append(f"#   {key}: {value}")
    lines += ["#", "# Choices, and why:"]
    for choice in choices:
        lines.append(f"#   {choice.key} = {choice.value}")
        lines.append(f"#       {choice.why}")
    return "\n".join(lines) + "\n" + yaml.safe_dump(raw, sort_keys=False)


def plan_dataset(
    data: Path,
    out: Path,
    labels: str | None = None,
    budget_minutes: float = 10.0,
    device: str = "cpu",
    memory_gb: float = 4.0,
    command: str = "scseg plan",
    progress: bool = True,
) -> tuple[dict, Fingerprint, list[Choice]]:
    """Fingerprint ``data``, plan, check the config loads, and write it to ``out`` (atomically)."""
    section = data_section(data, labels, out)
    data_config = DataConfig.model_validate(
        {**section, "root": str(Path(data) if Path(data).is_dir() else Path(data).parent)}
    )
    fp = measure(data_config, progress=progress)
    choices = plan_choices(fp, budget_minutes, device, memory_gb)
    raw = config_from_choices(choices, section)
    config_from_dict(
        yaml.safe_load(yaml.safe_dump(raw)), str(out), base=out.resolve().parent, check_data=False
    )
    write_text_atomic(out, render(raw, fp, choices, command))
    return raw, fp, choices


__all__ = ["Choice", "Fingerprint", "measure", "plan_choices", "plan_dataset"]
