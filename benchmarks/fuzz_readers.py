"""The reader fuzzer at benchmark size: each file reader against the independent oracle of tests/reader_oracle.py
(10,000 cases per reader by default; the suite runs 2,000). Counts, not timings: how many generated files
round-tripped, how many mutated files were read exactly as the oracle reads them, how many were refused and with
which code, and every disagreement (there must be none).

    .venv/bin/python benchmarks/fuzz_readers.py                  # 10,000 cases per reader, seed 2026
    .venv/bin/python benchmarks/fuzz_readers.py --cases 20000 --seed 7 --formats csv spans
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import reader_oracle  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=10_000, help="cases per reader")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--formats", nargs="+", default=list(reader_oracle.FORMATS), choices=reader_oracle.FORMATS)
    args = parser.parse_args()
    total_failures = 0
    with tempfile.TemporaryDirectory() as folder:
        for fmt in args.formats:
            outcomes, failures = reader_oracle.run(fmt, args.cases, args.seed, Path(folder), stream_every=4)
            total_failures += len(failures)
            print(json.dumps({"reader": fmt, "cases": sum(outcomes.values()), "disagreements": len(failures),
                              **dict(sorted(outcomes.items()))}), flush=True)
            for failure in failures[:5]:
                print("  " + failure, flush=True)
    raise SystemExit(1 if total_failures else 0)


if __name__ == "__main__":
    main()
