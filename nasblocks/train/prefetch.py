"""Host batches (a ``DataLoader``'s, pinned on CUDA) moved to the device one batch ahead.

While the model computes on batch k, batch k+1's host-to-device copy already runs on a side
CUDA stream: the copy is issued (``non_blocking``, from pinned memory) before batch k is
handed out, and the compute stream waits only for batch k's own copy (an event), not for the
copy in flight. On the CPU the same look-ahead runs with no stream: the batches pass through.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import torch
from torch import Tensor

Batch = tuple[Tensor, ...]


class Prefetch:
    """Iterate ``batches`` (sequences of host tensors) as tuples of ``device`` tensors."""

    def __init__(self, batches: Iterable[Sequence[Tensor]], device: torch.device) -> None:
        self.batches = batches
        self.device = device
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None

    def __iter__(self) -> Iterator[Batch]:
        source = iter(self.batches)
        ahead = self._send(next(source, None))
        while ahead is not None:
            batch, copied = ahead
            ahead = self._send(next(source, None))  # issued before this batch is used
            if copied is not None:
                compute = torch.cuda.current_stream(self.device)
                compute.wait_event(copied)
                for tensor in batch:
                    # Allocated on the side stream, used on the compute stream: the caching
                    # allocator must not hand the memory out again before compute is done.
                    tensor.record_stream(compute)
            yield batch

    def _send(
        self, batch: Sequence[Tensor] | None
    ) -> tuple[Batch, torch.cuda.Event | None] | None:
        """Start copying ``batch`` to the device; the event marks the copy's end on CUDA."""
        if batch is None:
            return None
        if self.stream is None:
            return tuple(t.to(self.device) for t in batch), None
        with torch.cuda.stream(self.stream):
            moved = tuple(t.to(self.device, non_blocking=True) for t in batch)
            copied = torch.cuda.Event()
            copied.record(self.stream)
        return moved, copied
