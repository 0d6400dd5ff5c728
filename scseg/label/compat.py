"""The one shim monailabel 0.8.5 needs on a current stack (see README, "MONAI Label").

monailabel 0.8.5 (its newest release) imports pydicom-seg 0.4.1, which imports
``pydicom._storage_sopclass_uids``: pydicom 3 removed that module and moved its UIDs to
``pydicom.uid`` (pydicom-seg issue 60, MONAILabel issue 1841). scseg needs pydicom 3 for highdicom
and the JPEG 2000 / enhanced DICOM readers, so instead of pinning pydicom<3 we register the old
module name as an alias of ``pydicom.uid`` before monailabel is imported. Only SOP class UID
constants are looked up there, and ``pydicom.uid`` defines them under the same names.
"""

from __future__ import annotations

import importlib.util
import os
import sys


def install_pydicom_alias() -> None:
    """Make ``import pydicom._storage_sopclass_uids`` work on pydicom 3 (no-op on pydicom 2)."""
    name = "pydicom._storage_sopclass_uids"
    if name in sys.modules or importlib.util.find_spec(name) is not None:
        return
    import pydicom.uid

    sys.modules[name] = pydicom.uid


def quiet_monailabel_environment() -> None:
    """Settings monailabel reads from the environment at import time.

    Tracking needs mlflow, which the lean install leaves out; nothing here should phone home.
    """
    os.environ.setdefault("MONAI_LABEL_TRACKING_ENABLED", "false")


def prepare_import() -> None:
    """Everything that must happen before the first ``import monailabel``."""
    quiet_monailabel_environment()
    install_pydicom_alias()


def missing_label_extra() -> str | None:
    """A one-paragraph install hint when monailabel or its server stack is absent, else None."""
    missing = [
        m
        for m in ("monailabel", "fastapi", "uvicorn", "dicomweb_client")
        if importlib.util.find_spec(m) is None
    ]
    if not missing:
        return None
    return (
        f"MONAI Label is not installed (missing: {', '.join(missing)}). Install the server with "
        "`pip install 'scseg[label]' && pip install --no-deps monailabel==0.8.5 pydicom-seg==0.4.1` "
        "(scripts/setup.sh does this; the README explains why --no-deps)"
    )
