"""Run scseg with tcmalloc when it is installed: PyTorch's CPU steps allocate and free large blocks
all the time, and glibc's malloc returns them to the OS and faults them back in on every step;
tcmalloc keeps them, which made 3D training steps 2x faster here (docs/benchmarks.md).

An allocator must be in place before the process starts, so the ``scseg`` command re-executes
itself once with ``LD_PRELOAD`` set (Linux only). ``SCSEG_ALLOCATOR=system`` turns this off. The
console entry point is ``scseg.__main__.main``, which re-executes before the command line (typer, rich
and the subcommands) is imported, so the first process costs only Python's own start-up.
"""

from __future__ import annotations

import ctypes.util
import os
import sys

_MARK = "_SCSEG_ALLOCATOR_SET"  # set in the re-executed process: never loop


def tcmalloc_library() -> str | None:
    """The installed tcmalloc shared library's name (``libtcmalloc_minimal.so.4``), or ``None``."""
    for name in ("tcmalloc_minimal", "tcmalloc"):
        found = ctypes.util.find_library(name)
        if found:
            return found
    return None


def current_allocator() -> str:
    """``tcmalloc`` when it is preloaded into this process, else ``system``."""
    return "tcmalloc" if "tcmalloc" in os.environ.get("LD_PRELOAD", "") else "system"


def tcmalloc_environment(env: dict[str, str]) -> dict[str, str] | None:
    """``env`` with tcmalloc preloaded, as :func:`reexec_with_tcmalloc` runs scseg; ``None`` where it
    would not (not Linux, ``SCSEG_ALLOCATOR=system``, already preloaded, tcmalloc not installed)."""
    if (
        sys.platform != "linux"
        or env.get("SCSEG_ALLOCATOR", "auto") == "system"
        or env.get(_MARK)
        or current_allocator() == "tcmalloc"
    ):
        return None
    library = tcmalloc_library()
    if library is None:
        return None
    preload = " ".join(p for p in (library, env.get("LD_PRELOAD", "")) if p)
    return {
        **env,
        "LD_PRELOAD": preload,
        _MARK: "1",
        # tcmalloc reports every allocation over 1 GiB on stderr unless told otherwise
        "TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD": env.get(
            "TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD", str(1 << 50)
        ),
    }


def reexec_with_tcmalloc(argv: list[str]) -> None:
    """Replace this process by ``python -m scseg ARGS`` with tcmalloc preloaded, when tcmalloc is
    installed and not preloaded yet; otherwise return and let the caller go on."""
    env = tcmalloc_environment(dict(os.environ))
    if env is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "scseg", *argv[1:]], env)
