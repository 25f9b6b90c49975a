"""How long a schema takes: the static generator over the schema corpus, per Cog rule set.

Every build folder of ``tests/fixtures/schema/corpus/`` (predictors and trainers with
every input type, BaseModel outputs, iterators, sibling modules, torch imports) gets
its document under the newest rules (Cog's Go generator), under 0.19 and under 0.15.8
(the SDK-written document of Cog <= 0.16), in-process and without importing any of
them. Folders that a rule set refuses (as that Cog did) count too: the error is the
result. Prints one line per rule set and the median per folder.

    python bench/schema.py [--rounds 5] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from cogfleet._errors import ConfigError
from cogfleet.schema import generate_schema

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "schema" / "corpus"
VERSIONS = (None, "0.19.3", "0.15.8")


def measure(rounds: int) -> dict[str, dict[str, float]]:
    folders = sorted(p for p in CORPUS.iterdir() if p.is_dir())
    figures: dict[str, dict[str, float]] = {}
    for version in VERSIONS:
        per_folder: list[float] = []
        refused = 0
        for _ in range(rounds):
            refused = 0
            for folder in folders:
                start = time.perf_counter()
                try:
                    generate_schema(folder, version)
                except ConfigError:
                    refused += 1
                per_folder.append(time.perf_counter() - start)
        figures[version or "installed"] = {
            "folders": len(folders),
            "refused": refused,
            "median_ms": statistics.median(per_folder) * 1000,
            "max_ms": max(per_folder) * 1000,
            "total_s_per_round": sum(per_folder) / rounds,
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    figures = measure(args.rounds)
    print("| rules | folders | refused | median ms | max ms | s per round |")
    print("|---|---|---|---|---|---|")
    for name, row in figures.items():
        print(
            f"| {name} | {row['folders']:.0f} | {row['refused']:.0f} | {row['median_ms']:.1f} "
            f"| {row['max_ms']:.1f} | {row['total_s_per_round']:.3f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
