"""Where a stage's log records go: all to its log file, and what shows progress to the console."""

from __future__ import annotations

import logging
import sys
import time
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


class ProgressLog:
    """A long loop's progress in its stage's log (and on the console): `what: done of total`,
    the seconds so far and an estimate of those left, at most every `every` seconds."""

    def __init__(self, logger: logging.Logger, what: str, total: int, every: float = 30.0):
        self.logger, self.what, self.total, self.every = logger, what, total, every
        self.started = self.last = time.perf_counter()

    def update(self, done: int) -> None:
        now = time.perf_counter()
        if done >= self.total or now - self.last < self.every:
            return
        self.last, elapsed = now, now - self.started
        self.logger.info(
            "%s: %d of %d (%.0f%%) in %.0f s, about %.0f s left",
            self.what,
            done,
            self.total,
            100 * done / self.total,
            elapsed,
            elapsed * (self.total - done) / max(done, 1),
            extra=CONSOLE,
        )
