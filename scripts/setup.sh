#!/usr/bin/env bash
# One-step set-up on a fresh machine: a virtual environment in .venv with PyTorch and scseg.
#
# PyTorch goes in first and pinned. If torch is not installed yet we install the CPU build
# torch==2.13.0; an unpinned `torch` (asked for by us or by any dependency) would make pip pull
# several GB of CUDA wheels. If the environment already has a torch (GPU users install their own
# CUDA build first, see README), we keep it. Either way the installed torch is written to a pip
# constraint file so that no later step, not even a package's isolated build environment, can
# replace it.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${SCSEG_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
EXTRAS="${SCSEG_EXTRAS:-dev,dicom,label}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --quiet)
# Some machines' pip config lists index folders that do not exist; pip then warns once per package.
quiet_pip() { "${PIP[@]}" "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  echo "[setup] installing torch==2.13.0 (CPU build)"
  quiet_pip install "torch==2.13.0"
fi
TORCH_VERSION="$("$VENV/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])')"
CONSTRAINTS="$VENV/constraints.txt"
echo "torch==$TORCH_VERSION" > "$CONSTRAINTS"
echo "[setup] keeping torch $TORCH_VERSION; installing scseg[$EXTRAS]"
PIP_CONSTRAINT="$CONSTRAINTS" quiet_pip install -e ".[$EXTRAS]"
if [[ ",$EXTRAS," == *",label,"* ]]; then
  # MONAI Label 0.8.5 without its declared requirements: scseg[label] installed the ones the server
  # needs. Its full list would replace our torch with a CUDA torchvision build, pin numpy<2 and
  # build sam2 from source (README, "MONAI Label"). pydicom-seg is imported by monailabel on
  # start-up; scseg.label.compat makes it work with pydicom 3.
  echo "[setup] installing monailabel==0.8.5 (--no-deps, see README)"
  PIP_CONSTRAINT="$CONSTRAINTS" quiet_pip install --no-deps "monailabel==0.8.5" "pydicom-seg==0.4.1"
fi
if [[ ",$EXTRAS," == *",dev,"* ]]; then
  # rt-utils reads our RT structure sets back in the tests (an independent rasteriser); its declared
  # opencv-python needs libGL, the headless build (dev extra) provides the same cv2
  echo "[setup] installing rt-utils==1.2.7 (--no-deps, test reader)"
  PIP_CONSTRAINT="$CONSTRAINTS" quiet_pip install --no-deps "rt-utils==1.2.7"
fi
# tcmalloc makes CPU training steps ~2x faster (scseg preloads it by itself when it is installed)
if ! ldconfig -p 2>/dev/null | grep -q tcmalloc; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing libtcmalloc-minimal4 (optional: faster CPU training)"
    timeout 300 apt-get install -y -q --no-install-recommends libtcmalloc-minimal4 >/dev/null 2>&1 \
      || echo "[setup] could not install libtcmalloc-minimal4; scseg uses the system allocator"
  else
    echo "[setup] tip: install tcmalloc (Debian/Ubuntu: libtcmalloc-minimal4) for ~2x faster CPU training"
  fi
fi
# the DICOMweb tests start a real Orthanc with its DICOMweb plugin (Debian: orthanc, orthanc-dicomweb)
if [[ ",$EXTRAS," == *",dev,"* ]] && ! command -v Orthanc >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing orthanc + orthanc-dicomweb (test archive for DICOMweb)"
    timeout 600 apt-get install -y -q --no-install-recommends orthanc orthanc-dicomweb >/dev/null 2>&1 \
      || echo "[setup] could not install orthanc; the DICOMweb tests will skip (fail under CI=true)"
  else
    echo "[setup] tip: install orthanc and orthanc-dicomweb to run the DICOMweb tests"
  fi
fi
echo "[setup] done: $("$VENV/bin/scseg" --version)"
