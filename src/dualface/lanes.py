"""A training step split into lanes: the batch cut into parts, each part's forward and backward run in a
thread of its own with one torch thread, and the parts' gradients summed, weighted by their share.

Why: torch's threads meet at a barrier after every layer. On a CPU another busy process shares, one of them
is descheduled and the others wait for it at every layer, and the kernel shares the CPU per thread, so one
thread beside a two-thread job gets a third of two cores. Lanes meet once a step, so each keeps its core's
share: beside a two-thread numpy job on 2 cores, `lite` kept 0.47-0.53x of its idle speed in lanes against
0.35-0.41x on one thread, and 0.68x beside a one-thread loop (bench/results/contention*.json). Idle, one
process's threads are 5-10% faster, so training runs in lanes only while `threads.ThreadPolicy` finds the
CPU shared.

A step minimises what data-parallel training (DDP, `--processes`) does: each part's loss, a weighted mean
over its own faces, weighted by the part's size; where every face weighs the same (no mask weighting) that
is the whole batch's loss exactly. The gradients are summed in lane order, so runs repeat.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import torch

Tensors = dict[str, dict[str, torch.Tensor]]  # identity -> "inputs", "targets", ... -> (B, C, S, S)


def split_batch(tensors: Tensors, parts: int) -> list[tuple[float, Tensors]]:
    """(share of the batch, its faces) for up to `parts` parts, cut along the batch of every identity alike."""
    batch = len(next(iter(tensors.values()))["inputs"])
    parts = min(parts, batch)  # never an empty part
    bounds = [round(batch * i / parts) for i in range(parts + 1)]
    return [
        ((end - start) / batch, {name: {k: v[start:end] for k, v in t.items()} for name, t in tensors.items()})
        for start, end in itertools.pairwise(bounds)
    ]


def _set_threads(count: int) -> None:
    """A lane's torch (OpenMP) thread count: per calling thread. torch's lazy start-up of a thread re-applies
    the count last set by any thread, at its first parallel op: let it run first, then set this lane's."""
    torch.get_num_threads()
    torch.set_num_threads(count)


class Lanes:
    """`count` threads that run one part of a step each, with `threads` torch (OpenMP) threads apiece."""

    def __init__(self, count: int, threads: int = 1):
        self.count, self.threads = count, threads
        self._pool = ThreadPoolExecutor(count, thread_name_prefix="lane", initializer=_set_threads, initargs=(threads,))

    def gradients(
        self,
        tensors: Tensors,
        part_loss: Callable[[Tensors], tuple[torch.Tensor, dict]],
        params: Sequence[torch.nn.Parameter],
    ) -> tuple[torch.Tensor, list[tuple[float, dict]]]:
        """Set each parameter's .grad to the whole batch's gradient of `part_loss` and return the whole
        batch's loss (detached) and each part's share of the batch and extras. `part_loss(faces)` gives a
        part's loss, a mean over its faces, and anything else it wants back (its losses, its drawn faces)."""

        def run(part: tuple[float, Tensors]) -> tuple[torch.Tensor, tuple[torch.Tensor | None, ...], dict]:
            share, faces = part
            loss, extras = part_loss(faces)
            return loss.detach() * share, torch.autograd.grad(loss * share, params, allow_unused=True), extras

        parts = split_batch(tensors, self.count)
        done = list(self._pool.map(run, parts))
        for i, p in enumerate(params):
            grad = None
            for _, grads, _ in done:  # in lane order, in place: the first lane's layout is the weight's
                g = grads[i]
                if g is not None:
                    # summed into the first lane's own buffer, unless autograd handed back a view of another
                    grad = (g if g._base is None else g.clone()) if grad is None else grad.add_(g)
            p.grad = grad
        total = sum(loss for loss, _, _ in done)
        return total, [(share, extras) for (share, _), (_, _, extras) in zip(parts, done, strict=True)]

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)
