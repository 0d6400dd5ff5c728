"""The sizes scseg refuses before allocating, each raisable by an environment variable.

Headers and configs come from anywhere, so a declared size is a claim, not a fact: a NIfTI header
can declare 2^31 voxels over a few kilobytes of gzip, a DICOM header 65535 x 65535 pixels, a YAML
file a thousand nested lists. Each such claim is checked against one of these limits first, and the
refusal names the variable that raises it, for the user whose image really is that large.

Examples:
    >>> from scseg.limits import MAX_VOXELS
    >>> MAX_VOXELS.value() >= 2**30
    True
    >>> MAX_VOXELS.env
    'SCSEG_MAX_VOXELS'
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from scseg.errors import ConfigError


@dataclass(frozen=True)
class Limit:
    """A positive integer limit with a default, raisable by the environment variable ``env``."""

    env: str
    default: int
    unit: str  # what is counted, for messages: "voxels", "bytes"

    def value(self) -> int:
        """The limit in force: ``$env`` when set, else the default.

        Raises:
            ConfigError: ``$env`` set to something other than a positive integer.
        """
        text = os.environ.get(self.env, "").strip()
        if not text:
            return self.default
        try:
            number = int(text.replace("_", ""))
        except ValueError:
            number = 0
        if number <= 0:
            raise ConfigError(f"{self.env}={text!r}: expected a positive whole number of {self.unit}")
        return number

    def refusal(self, what: str, claimed: int) -> str:
        """The message for ``what`` claiming ``claimed`` units, more than the limit."""
        return (
            f"{what}: {claimed:,} {self.unit}, and the limit is {self.value():,}. Either the header "
            f"or file lies (damaged or hostile), or the input really is that large: to accept it, "
            f"set the environment variable {self.env} to a larger number"
        )


# 2^30 voxels is 4 GiB as float32: a 512 x 512 x 2000-slice whole-body CT is half of it
MAX_VOXELS = Limit("SCSEG_MAX_VOXELS", 2**30, "voxels")
# the largest shipped config is ~4 KB, a model.yaml ~2 KB
MAX_YAML_BYTES = Limit("SCSEG_MAX_YAML_BYTES", 4 * 1024 * 1024, "bytes")
# values once every alias is expanded: a 98-label config has ~1,000
MAX_YAML_NODES = Limit("SCSEG_MAX_YAML_NODES", 1_000_000, "values")
# nested lists and mappings: the configs nest 4 deep; Python's recursion limit is hit near 300
MAX_YAML_DEPTH = Limit("SCSEG_MAX_YAML_DEPTH", 64, "levels")
# series in one DICOMweb study (QIDO): a CT study has tens; more is a broken or hostile answer
MAX_STUDY_SERIES = Limit("SCSEG_MAX_STUDY_SERIES", 1000, "series")
