"""Benchmark: `sp-dedup | sp-lmdata` throughput on the shared real units (goal: >= 1 M units/s)."""
import os
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(os.environ.get("SP_BIN") or Path(sys.executable).parent)  # as in conftest.py
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsc-hubert100" / "train.txt"


def main():
    if not DATA.exists():
        print(f"bench units-tools: skipped, {DATA} not found")
        return
    units = sum(len(line.split("|")[1].split()) for line in DATA.open())
    pipe = f"{BIN}/sp-dedup {DATA} | {BIN}/sp-lmdata > /dev/null"
    timings = {}
    for name, command in [("cat | wc (I/O floor)", f"cat {DATA} | wc -l > /dev/null"), ("sp-dedup | sp-lmdata", pipe)]:
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
