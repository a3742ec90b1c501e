"""Run an sp-* tool's main in this process, then say at its exit how many of the process groups it made are
still alive: `python groups_at_exit.py speechprompt.pretrain ARGS...` (under torchrun) prints
`rank R: N of M process groups alive at exit` on stderr. A gloo group alive at the interpreter's teardown
can abort a process whose work is done (see speechprompt.distributed.leave)."""
import atexit
import importlib
import os
import sys
import weakref

import torch.distributed as dist

made = []


def recording(make, group_of):
    def wrapper(*args, **kwargs):
        result = make(*args, **kwargs)
        made.append(weakref.ref(group_of(result)))
        return result
    return wrapper


# fairseq and the tools call them through the module (`dist.init_process_group`), so these wrappers see every group
dist.init_process_group = recording(dist.init_process_group, lambda _: dist.group.WORLD)
dist.new_group = recording(dist.new_group, lambda group: group)


@atexit.register
def report():
    alive = sum(ref() is not None for ref in made)
    print(f"rank {os.environ.get('RANK')}: {alive} of {len(made)} process groups alive at exit", file=sys.stderr)


if __name__ == "__main__":
    tool = importlib.import_module(sys.argv[1])
    sys.argv = [sys.argv[1], *sys.argv[2:]]
    tool.main()
