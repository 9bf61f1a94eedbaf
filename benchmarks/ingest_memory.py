"""Ingestion in bounded memory: a generated Yelp-Open-Dataset-style review file of several
million lines (with review text, as the real 5 GB file has) goes through the `ingest` stage;
peak memory is measured and compared with the same interactions carrying short texts. The
reader keeps only (user, item, time) of each line, so peak memory follows the number of kept
interactions, not the size of the file.

    python benchmarks/ingest_memory.py --lines 5000000
Prints a table and writes benchmarks/results/ingest_memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def identifier(rng: random.Random, n: int) -> str:
    return "".join(rng.choices(string.ascii_letters + string.digits + "-_", k=n))


def generate(folder: Path, lines: int, text_chars: int, seed: int = 0) -> tuple[Path, Path]:
    """Reviews by Zipf-ish users over Zipf-ish businesses, dated 2005..2021, one JSON per line."""
    rng = random.Random(seed)
    users = [identifier(rng, 22) for _ in range(max(lines // 8, 1))]
    businesses = [identifier(rng, 22) for _ in range(max(lines // 40, 1))]
    filler = "The food was good and the service friendly. " * (text_chars // 44 + 1)
    reviews, business = folder / f"review_{text_chars}.json", folder / "business.json"
    with open(reviews, "w") as out:
        for n in range(lines):
            user = users[
                min(int(rng.paretovariate(1.2)) - 1, len(users) - 1)
                if rng.random() < 0.3
                else rng.randrange(len(users))
            ]
            item = businesses[
                min(int(rng.paretovariate(1.1)) - 1, len(businesses) - 1)
                if rng.random() < 0.5
                else rng.randrange(len(businesses))
            ]
            day = f"{rng.randint(2005, 2021)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            date = f"{day} {rng.randint(0, 23):02d}:00:00"
            out.write(
                json.dumps(
                    {
                        "review_id": identifier(rng, 22),
                        "user_id": user,
                        "business_id": item,
                        "stars": rng.randint(1, 5),
                        "useful": 0,
                        "funny": 0,
                        "cool": 0,
                        "text": filler[:text_chars],
                        "date": date,
                    }
                )
                + "\n"
            )
    if not business.exists():
        with open(business, "w") as out:
            for key in businesses:
                out.write(
                    json.dumps(
                        {
                            "business_id": key,
                            "name": f"Place {key[:5]}",
                            "city": "Phoenix",
                            "state": "AZ",
                            "stars": 4.0,
                            "review_count": 10,
                            "is_open": 1,
                            "categories": "Restaurants, Pizza",
                        }
                    )
                    + "\n"
                )
    return reviews, business


def ingest(folder: Path, reviews: Path, business: Path) -> dict:
    spec = {"format": "yelp", "reviews": str(reviews), "business": str(business)}
    out = folder / "out"
    command = [
        sys.executable,
        "-m",
        "pipeline",
        "ingest",
        "--spec",
        json.dumps(spec),
        "--out-interactions",
        str(out / "i.parquet"),
        "--out-items",
        str(out / "t.parquet"),
        "--out-users",
        str(out / "u.parquet"),
        "--out-report",
        str(out / "r.json"),
    ]
    # A fresh wrapper process per run: its RUSAGE_CHILDREN peak is this ingest's alone.
    wrapper = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", wrapper, *command],
        check=True,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    seconds = time.perf_counter() - started
    peak_kb = int(done.stdout.split()[-1])
    report = json.loads((out / "r.json").read_text())
    return {
        "file_mb": round(reviews.stat().st_size / 2**20),
        "peak_rss_mb": round(peak_kb / 1024),
        "seconds": round(seconds, 1),
        "lines_per_s": round(report["rows_read"] / seconds),
        "rows_read": report["rows_read"],
        "interactions_kept": report["interactions"],
        "users": report["users"],
        "items": report["items"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=5_000_000)
    parser.add_argument("--folder", type=Path, help="where to write the generated files (default: a temp folder)")
    args = parser.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="ingest-memory-"))
    folder.mkdir(parents=True, exist_ok=True)
    results = {}
    for text_chars in (40, 600):
        reviews, business = generate(folder, args.lines, text_chars)
        results[f"text_{text_chars}_chars"] = ingest(folder, reviews, business)
        reviews.unlink()
    out = REPO / "benchmarks" / "results" / "ingest_memory.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"lines": args.lines, **results}, indent=2) + "\n")
    print(f"{'review text':<14}{'file MB':>9}{'peak RSS MB':>13}{'seconds':>9}{'lines/s':>10}{'kept':>10}")
    for name, r in results.items():
        print(
            f"{name:<14}{r['file_mb']:>9}{r['peak_rss_mb']:>13}{r['seconds']:>9}{r['lines_per_s']:>10}{r['interactions_kept']:>10}"
        )
    print(f"written to {out}")


if __name__ == "__main__":
    main()
