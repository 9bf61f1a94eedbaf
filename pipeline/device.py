"""Which torch device a stage runs on: `auto` (CUDA when present) or the one asked for."""

from __future__ import annotations

from .errors import DataError


def resolve_device(device: str):
    """`auto` -> cuda when available, else cpu; `cuda[:N]` on a machine without CUDA is an
    error that says so (instead of a torch traceback deep in the job)."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DataError(
            f"device {device} was asked for, but this machine has no CUDA device (torch {torch.__version__}, "
            f"CUDA {'not built in' if torch.version.cuda is None else torch.version.cuda}); "
            "use device: auto or cpu"
        )
    return torch.device(device)
