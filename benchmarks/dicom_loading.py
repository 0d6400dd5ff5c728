"""DICOM series loading: scseg's reader against SimpleITK's ImageSeriesReader on a 300+ slice series.

Run by hand (results go to docs/benchmarks.md):

    .venv/bin/python benchmarks/dicom_loading.py --slices 320 --repeats 5

The series is generated from one slice of a real uncompressed 512 x 512 CT in ../shared/data (pixel
data and header kept, new SOP instance UIDs, positions and instance numbers), so both readers see
real DICOM headers. scseg = find_series (pydicom reads headers, groups, sorts along the normal,
checks spacing) + read_series (SimpleITK/GDCM reads pixels, RAS affine). SimpleITK =
GetGDCMSeriesFileNames + ImageSeriesReader.Execute. Both readers run once untimed first (file cache,
and this VM's first touch of fresh memory, which costs up to ~1 s per 300 MB once); every repetition
then reads the same files, alternating the two readers.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import pydicom
import SimpleITK as sitk
from pydicom.uid import generate_uid

from scseg.io.dicom_series import find_series, read_series
from scseg.paths import shared_data_dir

TEMPLATE = "dicom_seg_dcmqi_ct3slice"  # a real 512 x 512 uncompressed CT (3 slices)


def template_slice(root: Path) -> pydicom.Dataset:
    """The middle slice of the first uncompressed CT series found under ``root``."""
    series, _ = find_series(root)
    for s in series:
        if s.modality != "CT" or len(s.files) < 2:
            continue
        ds = pydicom.dcmread(s.files[len(s.files) // 2])
        if not ds.file_meta.TransferSyntaxUID.is_compressed:
            return ds
    raise SystemExit(f"no uncompressed CT series under {root}")


def write_series(template: pydicom.Dataset, folder: Path, slices: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = generate_uid()
    x0, y0, z0 = (float(v) for v in template.ImagePositionPatient)
    step = float(getattr(template, "SliceThickness", 1.0) or 1.0)
    for k in range(slices):
        ds = copy.deepcopy(template)
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesInstanceUID = series_uid
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [x0, y0, z0 + k * step]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceLocation = z0 + k * step
        ds.save_as(folder / f"IM{k:05d}.dcm", enforce_file_format=True)


def read_scseg(folder: Path) -> tuple[int, ...]:
    (series,), _ = find_series(folder)
    return read_series(series).shape


def read_sitk(folder: Path) -> tuple[int, ...]:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute().GetSize()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--slices", type=int, default=320)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data", type=Path, default=shared_data_dir() / TEMPLATE)
    args = parser.parse_args()
    template = template_slice(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "series"
        write_series(template, folder, args.slices)
        times: dict[str, list[float]] = {"scseg": [], "SimpleITK": []}
        shapes = {}
        for reader in (read_scseg, read_sitk):
            reader(folder)  # warm the file cache and the process's memory once, untimed
        for _ in range(args.repeats):
            for name, reader in (("scseg", read_scseg), ("SimpleITK", read_sitk)):
                start = time.perf_counter()
                shapes[name] = reader(folder)
                times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        print(name, " ".join(f"{v:.2f}" for v in values))
    base = statistics.median(times["SimpleITK"])
    print(f"{args.slices} slices of {template.Rows}x{template.Columns} ({template.file_meta.TransferSyntaxUID.name}), "
          f"median of {args.repeats}\n")  # fmt: skip
    print("| reader | time (s) | vs SimpleITK | shape |")
    print("|---|---|---|---|")
    for name, values in times.items():
        t = statistics.median(values)
        print(f"| {name} | {t:.2f} | {t / base:.2f}x | {shapes[name]} |")


if __name__ == "__main__":
    main()
