"""Benchmark: `sp-dedup | sp-lmdata` throughput on the shipped real units (goal: >= 1 M units/s)."""
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(os.environ.get("SP_BIN") or Path(sys.executable).parent)  # as in conftest.py
SHIPPED = Path(__file__).resolve().parents[1] / "tasks" / "units" / "gsc-hubert100" / "train.txt.gz"


def main():
    with tempfile.TemporaryDirectory() as tmp:  # plain text, so the tools are timed, not gzip
        data = Path(tmp) / "train.txt"
        with gzip.open(SHIPPED, "rb") as source, data.open("wb") as plain:
            shutil.copyfileobj(source, plain)
        measure(data)


def measure(data):
    units = sum(len(line.split("|")[1].split()) for line in data.open())
    pipe = f"{BIN}/sp-dedup {data} | {BIN}/sp-lmdata > /dev/null"
    timings = {}
    for name, command in [("cat | wc (I/O floor)", f"cat {data} | wc -l > /dev/null"), ("sp-dedup | sp-lmdata", pipe)]:
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run(["bash", "-o", "pipefail", "-c", command], check=True, stderr=subprocess.DEVNULL)
            best = min(best, time.perf_counter() - start)
        timings[name] = best
    seconds = timings["sp-dedup | sp-lmdata"]
    print(f"bench units-tools: sp-dedup | sp-lmdata: {units / seconds / 1e6:.2f} M units/s "
          f"({units} units in {seconds:.2f} s, best of 3; goal >= 1 M units/s)")


if __name__ == "__main__":
    main()
