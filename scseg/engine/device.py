"""Device names as users type them (``--device``, ``train.device``) -> ``torch.device``."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

from scseg.config.schema import DEVICE_CHOICES, is_device_name
from scseg.errors import ConfigError


def resolve_device(name: str, option: str = "--device") -> torch.device:
    """``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.

    Raises:
        ConfigError: an unknown name, or CUDA asked for where there is none (the message names
            ``option``, e.g. ``--device`` or ``train.device``).

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if not is_device_name(name):
        raise ConfigError(f"{option} {name!r}: expected {DEVICE_CHOICES}")
    value = str(name).strip().lower()
    if value == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(value)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{option} {name!r}: CUDA is not available on this machine; use auto or cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"{option} {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                f"(cuda:0..cuda:{torch.cuda.device_count() - 1})"
            )
    return device


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AVX512-BF16 / AMX); without it bf16 is
    emulated and slower than float32."""
    return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def describe_device(device: torch.device) -> str:
    """A one-line description of the hardware behind ``device``, recorded beside timings so that
    minutes from different machines are not compared as if alike.

    Example:
        >>> describe_device(torch.device("cpu")).startswith("cpu: ")
        True
    """
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    model = platform.processor() or platform.machine()
    try:  # Linux names the CPU model here; platform.processor() often only says "x86_64"
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass  # not Linux: keep platform's name
    bf16 = "native bf16" if cpu_has_native_bf16() else "no native bf16"
    capability = torch.backends.cpu.get_cpu_capability()
    return f"cpu: {model} ({capability}, {bf16}, {torch.get_num_threads()} threads)"
