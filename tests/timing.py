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
