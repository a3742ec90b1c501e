"""Benchmark: unit-LM pretraining speed (sp-pretrain's fairseq trainer step), on the CPU threads given.

Prints tokens/s of fairseq's Trainer.train_step (forward, backward, clip, Adam) for the `small`
size on real unit batches, and its time ratio to a bare forward+backward of the same model on
the same batch, the two timed alternately in one run; with torch's default threads, then with
one thread (on a CPU shared with other jobs, one thread can be much faster).
With BENCH_DEVICE=cuda (tests/gpu_check.sh), the same on the GPU for GSLM's size (`big`), in fp32 then
in bf16 (sp-pretrain --precision bf16: fairseq's --bf16, the model in bf16 with fp32 master weights),
instead of the thread counts.

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
SHIPPED = os.path.join(ROOT, "tasks", "units", "gsc-hubert100", "train.txt.gz")


def unit_lines(n):
    """write_split's records (id, units, no durations, no F0) of the first n shipped real utterances
    (deduplicated), or random ones if absent."""
    from speechprompt.dedup import dedup
    from speechprompt.io import Skipper, read_units

    if os.path.exists(SHIPPED):
        records = read_units(SHIPPED, Skipper(True))
        return [(r.id, " ".join(dedup(r).units), None, None) for r, _ in zip(records, range(n))]
    rng = np.random.default_rng(0)
    return [(f"u{i}", " ".join(map(str, rng.integers(0, 100, rng.integers(9, 46)))), None, None) for i in range(n)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    device = torch.device(os.environ.get("BENCH_DEVICE") or "cpu")
    on_gpu = device.type == "cuda"
    parser.add_argument("--size", default="big" if on_gpu else "small")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--max-tokens", type=int, default=16384 if on_gpu else 4096)
    options_ = parser.parse_args()
    logging.disable(logging.WARNING)
    from fairseq import tasks
    from fairseq.data import Dictionary
    from fairseq import utils
    from fairseq.trainer import Trainer

    from speechprompt.binarize import write_split
    from speechprompt.fairseq_run import config
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
        for precision in ("fp32", "bf16") if on_gpu else ("fp32",):
            argv = fairseq_argv(data, data, options_.size, None, 100, options_.max_tokens, 1, 0, 3, 1,
                                device, precision, 0.1, None, 50)
            cfg = config(argv)
            task = tasks.setup_task(cfg.task)
            task.load_dataset("train")
            model, criterion = task.build_model(cfg.model), task.build_criterion(cfg.criterion)
            trainer = Trainer(cfg, task, model, criterion)  # in bf16, it casts the model (and so `model`)
            batches = task.get_batch_iterator(task.dataset("train"), max_tokens=options_.max_tokens, seed=1,
                                              required_batch_size_multiple=8).next_epoch_itr(shuffle=False)
            sample = max(batches, key=lambda s: s["ntokens"])  # the fullest batch
            on_device = utils.move_to_cuda(sample) if on_gpu else sample

            def bare():
                model.train()
                model.zero_grad()
                loss, _, _ = criterion(model, on_device)
                loss.backward()

            def step():
                trainer.train_step([sample])

            def timed(fn):
                start = time.perf_counter()
                fn()
                if on_gpu:
                    torch.cuda.synchronize()
                return time.perf_counter() - start

            settings = [precision] if on_gpu else dict.fromkeys([torch.get_num_threads(), 1])
            for setting in settings:  # CPU: all cores, then one (shared CPUs)
                if not on_gpu:
                    torch.set_num_threads(setting)
                for warm in (bare, step):
                    timed(warm)
                times = {bare: [], step: []}
                for _ in range(options_.steps):
                    for fn in (bare, step):
                        times[fn].append(timed(fn))
                where = f"{torch.cuda.get_device_name()}, {setting}" if on_gpu else f"{setting} threads"
                report(options_.size, model, sample["ntokens"], where, np.median(times[bare]), np.median(times[step]))
            del trainer, model


def report(size, model, tokens, where, bare_s, step_s):
    params = sum(p.numel() for p in model.parameters())
    print(f"pretrain {size} ({params / 1e6:.2f} M params, {where}, batch {tokens} tokens): "
          f"{tokens / step_s:.0f} tokens/s per train step")
    print(f"pretrain {size} ({where}): bare forward+backward {tokens / bare_s:.0f} tokens/s")
    print(f"pretrain {size} ({where}): train step / bare forward+backward time ratio {step_s / bare_s:.2f}")


if __name__ == "__main__":
    sys.exit(main())
