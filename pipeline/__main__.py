"""`python -m pipeline <stage> [options] [--log FILE]`: the command each Snakemake rule runs.

With `--log FILE` (the long stages: train, embed) everything is logged to FILE, and the
console gets what shows progress: the records marked `CONSOLE`, warnings and errors, each
prefixed with the job's name; progress bars (embedding) go to the console only.
"""

from __future__ import annotations

import errno
import importlib
import logging
import sys
from pathlib import Path

from .console import configure_logging

STAGES = {
    "ingest": "pipeline.ingest",
    "prompts": "pipeline.prompts",
    "embed": "pipeline.embed",
    "embed-merge": "pipeline.embed:merge_main",
    "pca": "pipeline.pca",
    "retrieve": "pipeline.retrieve",
    "retrieve-index": "pipeline.retrieve:index_main",
    "retrieve-shard": "pipeline.retrieve:shard_main",
    "retrieve-merge": "pipeline.retrieve:merge_main",
    "split": "pipeline.split",
    "train": "pipeline.train",
    "evaluate": "pipeline.evaluate",
    "evaluate-shard": "pipeline.evaluate:shard_main",
    "evaluate-merge": "pipeline.evaluate:merge_main",
    "recommend": "pipeline.recommend",
    "aggregate": "pipeline.aggregate",
    "bundle": "pipeline.bundle",
    "tables": "pipeline.tables",
    "plots": "pipeline.plots",
    "compare": "pipeline.compare",
    "docs": "pipeline.docs",
}


# Faults of the disk or of permissions, each with what to do about it.
DISK_FAULTS = {
    errno.ENOSPC: "free some space, or point results elsewhere, and run again",
    errno.EDQUOT: "the disk quota is used up: free some space and run again",
    errno.EROFS: "the file system is read-only: run from a writable folder",
    errno.EACCES: "no permission: check the owner and mode of the folder",
    errno.EPERM: "not permitted: check the owner and mode of the folder",
    errno.EISDIR: "a folder stands where a file should be: move it away",
    errno.ENOTDIR: "a file stands where a folder should be: move it away",
    errno.EEXIST: "a file stands where a folder should be: move it away",
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in STAGES:
        sys.exit(f"usage: python -m pipeline {{{','.join(STAGES)}}} [options]")
    argv = sys.argv[2:]
    log_file = None
    if "--log" in argv:
        at = argv.index("--log")
        log_file, argv = Path(argv[at + 1]), argv[:at] + argv[at + 2 :]
    configure_logging(log_file)
    from .errors import DataError

    module, _, function = STAGES[sys.argv[1]].partition(":")
    entry = getattr(importlib.import_module(module), function or "main")
    try:
        entry(argv)
    except DataError as err:  # bad input: a message for the user, not a traceback
        logging.getLogger("pipeline").error("%s", err)
        sys.exit(1 if log_file else f"error: {err}")
    except OSError as err:
        if err.errno not in DISK_FAULTS:
            raise
        # A disk or permission fault: the file and the cause, in one line.
        message = f"{err.filename}: cannot write or read it: {err.strerror} ({DISK_FAULTS[err.errno]})"
        logging.getLogger("pipeline").error("%s", message)
        sys.exit(1 if log_file else f"error: {message}")
    except BaseException:
        if log_file:
            logging.getLogger("pipeline").exception("failed")
        raise


if __name__ == "__main__":
    main()
