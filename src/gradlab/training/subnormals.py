"""Flushing subnormal floats to zero on the CPU, in every thread that computes.

A vanishing gradient passes through float32's subnormal range (below 1.2e-38) on its way to zero, and many x86 CPUs
compute on subnormals through a slow microcode path, which makes a tanh RNN's training step several times slower
(`make bench` measures the penalty of the machine it runs on).

`torch.set_flush_denormal` sets the flush-to-zero and denormals-are-zero bits of the calling thread only. OpenMP's
worker threads (torch's intra-op pool) copy the bits of the thread that starts them, so setting them before the pool
exists reaches every thread; once the pool is running (an earlier job of a Hydra multirun, or anything that computed
before) its workers keep the old bits, and `set_flush_denormal` is then run inside each of them through libgomp's
own entry point for a parallel region.

What a training run records is measured, not assumed: `flush_state` multiplies a tensor of subnormals split over
the intra-op threads and reports the fraction that came out zero (1.0: every thread flushes; 0.0: none does)."""

from __future__ import annotations

import contextlib
import ctypes
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

_GRAIN = 32768  # at::internal::GRAIN_SIZE: torch gives each intra-op thread chunks of at least this many elements


def flush_state() -> float:
    """Fraction of a subnormal tensor, multiplied by 1 across the intra-op threads, that the CPU flushed to 0.

    The tensor is made and read as integer bits: writing 1e-39 as a float, or comparing with 0.0, would itself be
    flushed or treated as zero by the thread that does it, and measure that thread instead of the workers."""
    n = 4 * _GRAIN * max(torch.get_num_threads(), 1)
    x = torch.ones(n, dtype=torch.int32).view(torch.float32)  # bits 0x00000001: 1.4e-45, float32's smallest
    return ((x * 1.0).view(torch.int32) == 0).sum().item() / n


def set_flush_denormal(on: bool) -> float:
    """Flush (or stop flushing) subnormals in this thread and every intra-op thread; return `flush_state()`.

    On a CPU without the flush bits (torch.set_flush_denormal returns False) nothing changes and 0.0 comes back."""
    if not torch.set_flush_denormal(on):
        return flush_state()
    state = flush_state()
    if state != float(on):  # the pool's workers kept the bits they started with
        _in_every_openmp_thread(lambda: torch.set_flush_denormal(on))
        state = flush_state()
    return state


@contextlib.contextmanager
def flushing(on: bool) -> Iterator[float]:
    """Flush subnormals (or not) for the duration, then put back what was there (a run inside a longer process, e.g.
    a multirun job or a test, leaves the process as it found it); yields `flush_state()`. Flushing asked for and not
    obtained in every thread (a CPU without the bits, an OpenMP other than GNU's) is a warning, not an error."""
    before = flush_state() == 1.0
    try:
        state = set_flush_denormal(on)
        if on and state != 1.0:
            warnings.warn(f"trainer.flush_denormal=true, but only {state:.0%} of a subnormal multiply across the "
                          f"intra-op threads was flushed: training may take the CPU's slow subnormal path",
                          stacklevel=3)
        yield state
    finally:
        set_flush_denormal(before)


def _in_every_openmp_thread(fn: Callable[[], object]) -> None:
    """Run fn once in each thread of torch's OpenMP pool, through GOMP_parallel (what `#pragma omp parallel` compiles
    to), looked up through torch's own CPU library so that it is the OpenMP torch uses. Where there is none (another
    platform or OpenMP runtime), nothing happens: flush_state() tells what holds."""
    lib = next(iter(sorted(Path(torch.__file__).parent.joinpath("lib").glob("libtorch_cpu.*"))), None)
    try:
        parallel = ctypes.CDLL(str(lib)).GOMP_parallel
    except (OSError, AttributeError, TypeError):
        return
    callback_type = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
    callback = callback_type(lambda _: fn())
    parallel.argtypes, parallel.restype = [callback_type, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint], None
    parallel(callback, None, torch.get_num_threads(), 0)
