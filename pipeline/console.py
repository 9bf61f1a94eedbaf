"""Where a stage's log records go: all to its log file, and what shows progress to the console."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(message)s"
CONSOLE = {"console": True}  # logging `extra=` for a record that also belongs on the console


def configure_logging(log_file: Path | None) -> None:
    """Without a file: everything to stderr. With one: everything to the file, and to the
    console (stderr, prefixed with the job's name) the `CONSOLE` records, warnings and errors."""
    if log_file is None:
        logging.basicConfig(level=logging.INFO, format=FORMAT, stream=sys.stderr)
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    to_file = logging.FileHandler(log_file, mode="w")
    to_file.setFormatter(logging.Formatter(FORMAT))
    to_console = logging.StreamHandler(sys.stderr)
    to_console.addFilter(lambda record: getattr(record, "console", False) or record.levelno >= logging.WARNING)
    to_console.setFormatter(logging.Formatter(f"[{log_file.parent.name} {log_file.stem}] %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[to_file, to_console])
    logging.captureWarnings(True)
