"""Timing for the benchmarks (tests/bench_*.py): the best of a few runs after a warm-up."""
import time


def best_of(function, repeats: int = 5) -> float:
    """Seconds of the fastest of `repeats` calls of `function`, after one call to warm up."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def best_of_each(functions: list, repeats: int = 5) -> list[float]:
    """Seconds of the fastest of `repeats` calls of each function, the calls taken in turns (one of each,
    then again), so that a slow spell of shared cores falls on all of them alike rather than on the one
    being timed then; each function is called once first to warm up."""
    for function in functions:
        function()
    times = [[] for _ in functions]
    for _ in range(repeats):
        for function, spent in zip(functions, times):
            start = time.perf_counter()
            function()
            spent.append(time.perf_counter() - start)
    return [min(spent) for spent in times]


def with_gradient(tensor, function):
    """`function`, called with `tensor`'s gradient on and turned off again after: the bare model's backward
    reaches its token embeddings, while the other functions timed beside it see them frozen."""
    def call():
        tensor.requires_grad_(True)
        try:
            function()
        finally:
            tensor.requires_grad_(False)
    return call
