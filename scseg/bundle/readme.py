"""``docs/README.md`` of an exported bundle: what the model is, its labels, how to run it."""

from __future__ import annotations

from scseg.artefact.spec import ModelSpec


def bundle_readme(meta: dict, spec: ModelSpec, name: str, torchscript: bool) -> str:
    """Markdown for a person who received only the bundle folder."""
    out = meta["network_data_format"]["outputs"]["pred"]["channel_def"]
    labels = "\n".join(f"| {k} | {v} |" for k, v in out.items())
    metrics = meta.get("eval_metrics") or {}
    dice = "\n".join(f"| {k} | {v:.3f} |" for k, v in metrics.items()) or "| (not recorded) | |"
    refs = "\n".join(f"- {r}" for r in meta["references"])
    ts = (
        "\n- `models/model.ts`: TorchScript (traced), for runtimes without Python model code."
        if torchscript
        else ""
    )
    spatial = "x".join(str(s) for s in spec.inference.roi_size)
    return f"""# {meta["name"]}

{meta["description"]}

{meta["intended_use"]}

## Files
- `configs/metadata.json`: versions, input/output format, label names (`channel_def`), references.
- `configs/inference.json`: MONAI bundle inference workflow running scseg's own preprocessing,
  inferer and inversion, i.e. exactly `scseg predict` (window {spatial}, blending
  `{spec.inference.blend}`, overlap {spec.inference.overlap}).
- `configs/scseg_model.yaml`: the model's description (network, preprocessing, inference, labels,
  versions, provenance); scseg reads the bundle through it.
- `models/model.pt`: the network's state dict.{ts}

## Labels (output channels)
| channel | structure |
|---|---|
{labels}

Label values written to the output NIfTI: {meta["label_classes"]}.

## Validation (at export)
| metric | value |
|---|---|
{dice}

## Run it
Needs `pip install scseg[bundle]` (the network class lives in scseg; pytorch-ignite and fire run the
MONAI workflow).

```bash
python -m monai.bundle run --config_file {name}/configs/inference.json \\
    --bundle_root {name} --dataset_dir /path/to/niftis --output_dir /path/to/out
```

Each `*.nii[.gz]` in the dataset folder gives `<name>_seg.nii.gz` on the input's own grid.
The same folder also works with scseg: `scseg predict --model {name} --input ... --output ...` and
`scseg label serve --model {name} --studies ...` (MONAI Label).

## References
{refs}
"""
