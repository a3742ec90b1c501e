"""Benchmark: sp-pretrain on 2 processes (torchrun, gloo) over 1 process, on the CPU, one thread a process.

Both runs read the same batches per process (`--max-tokens`), so 2 processes make updates of twice
the tokens; the measure is fairseq's training throughput (its `wps`, all processes together, over the
epoch's train steps; start-up and validation are not counted), 2 processes over 1. On a machine with
two cores shared with other jobs this is context, not a goal; on 2 GPUs the goal is >= 1.8.

    .venv/bin/python tests/bench_distributed.py [--size small] [--updates 30]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

from bench_pretrain import unit_lines

BIN = os.environ.get("SP_BIN") or os.path.dirname(sys.executable)  # as in conftest.py


def pretrain(data, save_dir, size, updates, max_tokens, processes):
    """tokens/s of fairseq's train steps and the wall time of one sp-pretrain run on `processes` processes."""
    command = [os.path.join(BIN, "sp-pretrain"), data, "--save-dir", save_dir, "--size", size, "--max-epoch", "1",
               "--max-update", str(updates), "--max-tokens", str(max_tokens), "--threads", "1", "--device", "cpu",
               "--log-interval", "1000"]
    if processes > 1:
        command = [os.path.join(BIN, "torchrun"), "--standalone", "--nproc_per_node", str(processes),
                   "--no-python", *command]
    started = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    wall = time.perf_counter() - started
    if run.returncode != 0:
        sys.exit(f"bench distributed: sp-pretrain on {processes} process(es) failed:\n{run.stderr[-2000:]}")
    epochs = [line for line in run.stderr.splitlines() if re.search(r"\| train \| epoch \d+ \|", line)]
    return float(re.search(r"\| wps ([\d.]+) ", epochs[-1]).group(1)), wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small")
    parser.add_argument("--updates", type=int, default=30)
    parser.add_argument("--max-tokens", type=int, default=2048)
    options = parser.parse_args()
    from fairseq.data import Dictionary

    from speechprompt.binarize import write_split

    with tempfile.TemporaryDirectory() as work:
        data = os.path.join(work, "bin")
        os.makedirs(data)
        dictionary = Dictionary()
        for unit in range(100):
            dictionary.add_symbol(str(unit), n=1)
        dictionary.save(os.path.join(data, "dict.txt"))
        lines = unit_lines(6000)  # enough for 2 x updates x max-tokens: the epoch does not end first
        write_split(data, "train", lines, dictionary)
        write_split(data, "valid", lines[:200], dictionary)
        results = {n: pretrain(data, os.path.join(work, f"ulm{n}"), options.size, options.updates, options.max_tokens, n)
                   for n in (1, 2)}
    (one, one_wall), (two, two_wall) = results[1], results[2]
    where = f"CPU, {options.size}, {options.max_tokens} tokens per process, 1 thread a process"
    print(f"pretrain distributed ({where}): 1 process {one:.0f} tokens/s, 2 processes (torchrun, gloo) {two:.0f} tokens/s")
    print(f"pretrain distributed ({where}): 2-process / 1-process throughput {two / one:.2f} "
          f"(wall of the whole run, {options.updates} updates: {one_wall:.0f} s and {two_wall:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
