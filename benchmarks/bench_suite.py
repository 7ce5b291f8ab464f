"""Wall time of the contract suite against the embedded mock, serial and with -n 2.

    python benchmarks/bench_suite.py [--profile obshell-ci] [--output PATH]

Each run is the README's main job (``pytest contract_tests``) in a subprocess.
The serial run also counts what the suite sent: the Hypothesis examples of the
malformed-input tests (each one an encrypted request that must be rejected)
and the stages of the upgrade DAG it followed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# "- 80 passing, 0 failing, and 0 invalid test cases" per phase of each test.
EXAMPLES = re.compile(r"-\s+(\d+) passing, (\d+) failing, and \d+ invalid test cases")


def run_suite(profile: str, workers: int | None, report: Path) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "pytest",
        "contract_tests",
        "-q",
        "-p",
        "no:cacheprovider",
        "--hypothesis-profile",
        profile,
        "--hypothesis-show-statistics",
        "--compliance-json",
        str(report),
        "--compliance-report",
        str(report.with_suffix(".html")),
    ]
    if workers:
        command += ["-n", str(workers)]

    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started

    document = json.loads(report.read_text(encoding="utf-8"))
    return {
        "workers": workers or 0,
        "wall_s": round(wall, 2),
        "exit_code": result.returncode,
        "summary": result.stdout.strip().splitlines()[-1],
        "generated_examples": sum(
            int(m.group(1)) + int(m.group(2)) for m in EXAMPLES.finditer(result.stdout)
        ),
        "dag_stages_seen": len(
            {entry["stage"] for entry in document.get("timeline", [])}
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--profile",
        default="obshell-ci",
        help="Hypothesis profile (default obshell-ci)",
    )
    parser.add_argument(
        "--output", type=Path, default=ROOT / "reports" / "bench_suite.json"
    )
    options = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        rows = [
            run_suite(options.profile, None, Path(scratch) / "serial.json"),
            run_suite(options.profile, 2, Path(scratch) / "xdist.json"),
        ]

    print(f"{'workers':>7}  {'wall s':>7}  {'examples':>8}  {'DAG stages':>10}  result")
    for row in rows:
        examples = row["generated_examples"] if row["workers"] == 0 else "-"
        print(
            f"{row['workers']:>7}  {row['wall_s']:>7}  {examples:>8}  "
            f"{row['dag_stages_seen']:>10}  {row['summary']}"
        )

    options.output.parent.mkdir(parents=True, exist_ok=True)
    machine = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "system": platform.platform(),
    }
    options.output.write_text(
        json.dumps(
            {"profile": options.profile, "machine": machine, "runs": rows}, indent=2
        )
    )
    return 0 if all(row["exit_code"] == 0 for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
