"""Benchmark: unit-LM pretraining speed (sp-pretrain's fairseq trainer step), on the CPU threads given.

Prints tokens/s of fairseq's Trainer.train_step (forward, backward, clip, Adam) for the `small`
size on real unit batches, and its time ratio to a bare forward+backward of the same model on
the same batch, the two timed alternately in one run; with torch's default threads, then with
one thread (on a CPU shared with other jobs, one thread can be much faster).

    .venv/bin/python tests/bench_pretrain.py [--size small] [--steps 8]
"""
import argparse
import logging
import os
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "data", "gsc-hubert100", "train.txt")


def unit_lines(n):
    """`id<TAB>units` of the first n shared utterances (deduplicated), or random ones if absent."""
    from speechprompt.dedup import dedup
    from speechprompt.io import Skipper, read_units

    if os.path.exists(SHARED):
        records = read_units(SHARED, Skipper(True))
        return [(r.id, " ".join(dedup(r).units)) for r, _ in zip(records, range(n))]
    rng = np.random.default_rng(0)
    return [(f"u{i}", " ".join(map(str, rng.integers(0, 100, rng.integers(9, 46))))) for i in range(n)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--max-tokens", type=int, default=4096)
    options_ = parser.parse_args()
    logging.disable(logging.WARNING)
    from fairseq import options, tasks
    from fairseq.data import Dictionary
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq.trainer import Trainer

    from speechprompt.binarize import write_split
    from speechprompt.pretrain import fairseq_argv

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as data:
        dictionary = Dictionary()
        for unit in range(100):
            dictionary.add_symbol(str(unit), n=1)
        dictionary.save(os.path.join(data, "dict.txt"))
        lines = unit_lines(2000)
        for split in ("train", "valid"):
            write_split(data, split, lines, dictionary)
        argv = fairseq_argv(data, data, options_.size, None, 100, options_.max_tokens, 1, 0, 3, 1,
                            torch.device("cpu"), "fp32", 0.1, None, 50)
        cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(options.get_training_parser(), argv))
        task = tasks.setup_task(cfg.task)
        task.load_dataset("train")
        model, criterion = task.build_model(cfg.model), task.build_criterion(cfg.criterion)
        trainer = Trainer(cfg, task, model, criterion)
        batches = task.get_batch_iterator(task.dataset("train"), max_tokens=options_.max_tokens, seed=1,
                                          required_batch_size_multiple=8).next_epoch_itr(shuffle=False)
        sample = max(batches, key=lambda s: s["ntokens"])  # the fullest batch

        def bare():
            model.train()
            model.zero_grad()
            loss, _, _ = criterion(model, sample)
            loss.backward()

        def step():
            trainer.train_step([sample])

        for threads in dict.fromkeys([torch.get_num_threads(), 1]):  # all cores, then one (shared CPUs)
            torch.set_num_threads(threads)
            for warm in (bare, step):
                warm()
            times = {bare: [], step: []}
            for _ in range(options_.steps):
                for fn in (bare, step):
                    start = time.perf_counter()
                    fn()
                    times[fn].append(time.perf_counter() - start)
            report(options_.size, model, sample["ntokens"], threads, np.median(times[bare]), np.median(times[step]))


def report(size, model, tokens, threads, bare_s, step_s):
    params = sum(p.numel() for p in model.parameters())
    print(f"pretrain {size} ({params / 1e6:.2f} M params, {threads} threads, batch {tokens} tokens): "
          f"{tokens / step_s:.0f} tokens/s per train step")
    print(f"pretrain {size} ({threads} threads): bare forward+backward {tokens / bare_s:.0f} tokens/s")
    print(f"pretrain {size} ({threads} threads): train step / bare forward+backward time ratio {step_s / bare_s:.2f}")


if __name__ == "__main__":
    sys.exit(main())
