"""The reproducibility record written into every metrics file: what produced the numbers
(the configuration that matters for the run, package versions, the encoder's identity, the
device) and which data (hashes of the source files and of the canonical interactions)."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .io import file_sha256, read_json

PACKAGES = (
    "torch",
    "numpy",
    "polars",
    "pyarrow",
    "scikit-learn",
    "sentence-transformers",
    "transformers",
    "hnswlib",
    "snakemake",
    "llmesr-pipeline",
)


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


def code_sha256() -> str:
    """One hash over this package's source files: what a resumed run must share with the one it resumes."""
    import hashlib

    package = Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def machine() -> dict:
    """The CPU and the kernels torch picks for it: runs on other CPUs may differ in the last bits."""
    import torch

    cpu = platform.processor() or platform.machine()
    info = Path("/proc/cpuinfo")
    if info.is_file():
        names = [
            line.split(":", 1)[1].strip() for line in info.read_text().splitlines() if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    return {
        "cpu": cpu,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
    }


def record(
    config: dict,
    device: str,
    interactions: Path,
    ingest_report: Path,
    embed_meta: Path | None,
    training: dict | None = None,
) -> dict:
    """`training`: what the training job recorded about its run (input hashes, machine)."""
    encoder = read_json(embed_meta).get("encoder") if embed_meta else None
    training = training or {}
    return {
        "config": config,
        "packages": package_versions(),
        "encoder": encoder,
        "device": device,
        "training_inputs_sha256": training.get("inputs_sha256"),
        "machine": training.get("machine"),
        "data": {
            "interactions_sha256": file_sha256(interactions),
            "source_sha256": read_json(ingest_report).get("source_sha256"),
        },
    }
