"""Training augmentation done on whole batches where the batch already is (the GPU, usually).

Per-sample Python loops and PIL transforms would starve a GPU that trains a small net on
32x32 images; these are a few batched tensor ops each.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def random_flip(x: Tensor, generator: torch.Generator) -> Tensor:
    """Mirror each image of ``x`` (B, C, H, W) left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], 1, 1, 1, device=x.device, generator=generator) < 0.5
    return torch.where(flip, x.flip(3), x)


def random_crop(x: Tensor, padding: int, generator: torch.Generator) -> Tensor:
    """Zero-pad ``x`` (B, C, H, W) by ``padding`` and crop each image back at a random offset.

    On normalised images zero is the dataset mean, so the padding is mean-coloured.
    """
    if padding == 0:
        return x
    batch, _, height, width = x.shape
    padded = F.pad(x, (padding, padding, padding, padding)).permute(0, 2, 3, 1)  # (B, H', W', C)
    offsets = torch.randint(
        0, 2 * padding + 1, (2, batch), device=x.device, generator=generator
    )  # (2, B): top, left
    rows = offsets[0, :, None] + torch.arange(height, device=x.device)  # (B, H)
    cols = offsets[1, :, None] + torch.arange(width, device=x.device)  # (B, W)
    index = torch.arange(batch, device=x.device)[:, None, None]
    crops = padded[index, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and x.shape[1] > 1
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return crops.permute(0, 3, 1, 2).contiguous(memory_format=fmt)  # (B, C, H, W)


class BatchAugment:
    """Flip and / or crop, drawing from its own generator so runs repeat for a fixed seed."""

    def __init__(self, flip: bool, crop_padding: int, device: torch.device, seed: int) -> None:
        self.flip = flip
        self.crop_padding = crop_padding
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def __call__(self, x: Tensor) -> Tensor:
        if self.crop_padding:
            x = random_crop(x, self.crop_padding, self.generator)
        if self.flip:
            x = random_flip(x, self.generator)
        return x
