"""Mini-batches from images held in memory as one uint8 tensor (on the CPU or the GPU), with the
standard CIFAR augmentation done on whole batches. Every epoch's order and augmentation come from a
generator seeded by (seed, epoch), so a resumed run draws exactly the batches an uninterrupted one would."""
from __future__ import annotations

import numpy as np
import torch

from nasflow.catalog.datasets import dataset_info


def normalisation(name: str, x_train: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    info = dataset_info(name)
    if info.mean is not None:
        mean, std = torch.tensor(info.mean), torch.tensor(info.std)
    else:  # measured once on the training images (e.g. Freiburg at 64x64)
        pixels = torch.from_numpy(x_train).float().div_(255).reshape(-1, x_train.shape[-1])
        mean, std = pixels.mean(0), pixels.std(0)
    return mean.view(1, -1, 1, 1), std.view(1, -1, 1, 1)


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """Distinct for every (seed, epoch, stream) with stream < 1,000,033 (refills use stream 2 + step)."""
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + int(epoch)) * 1_000_033 + int(stream))


class Batches:
    """Batches of (normalised float images, labels) over a subset of an ImageArrays split."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, mean, std, augment: bool,
                 device="cpu", drop_last: bool = False, pad: int = 4, cutout: int = 0, image_transform=None,
                 flip: bool = True):
        """`augment`: random crop (zero padding `pad`) and flip; `cutout`: side of the square zeroed after
        normalisation (DARTS); `image_transform`: a per-image uint8 policy (AutoAugment, colour jitter)."""
        self.x = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).contiguous().to(device)
        self.y = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)
        self.batch_size, self.augment, self.drop_last, self.pad = batch_size, augment, drop_last, pad
        self.cutout, self.image_transform, self.flip = cutout, image_transform, flip
        self.mean, self.std = mean.to(device), std.to(device)

    def __len__(self):
        n = len(self.y)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def crop_flip(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Random crop with zero padding, then random horizontal flip, for a whole batch at once."""
        b, _, h, w = x.shape
        p = self.pad
        padded = torch.nn.functional.pad(x, (p, p, p, p))
        oy = torch.randint(0, 2 * p + 1, (b,), generator=g).to(x.device)
        ox = torch.randint(0, 2 * p + 1, (b,), generator=g).to(x.device)
        flip = ((torch.rand(b, generator=g) < 0.5) & self.flip).to(x.device)  # drawn either way: same sequence
        rows = oy[:, None] + torch.arange(h, device=x.device)[None, :]
        cols = ox[:, None] + torch.arange(w, device=x.device)[None, :]
        cols = torch.where(flip[:, None], cols.flip(1), cols)
        batch = torch.arange(b, device=x.device)[:, None, None]
        # Gathered in NHWC, handed on in NCHW: a channels-last batch sends oneDNN's backward down an AVX2
        # path that corrupts the heap (torch 2.14.1 on AMD EPYC; the trainer asks for channels_last itself).
        return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()

    def apply_cutout(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Zero one `cutout` x `cutout` square per image, centred anywhere (clipped at the border)."""
        b, _, h, w = x.shape
        cy = torch.randint(0, h, (b, 1, 1), generator=g).to(x.device)
        cx = torch.randint(0, w, (b, 1, 1), generator=g).to(x.device)
        ys = torch.arange(h, device=x.device).view(1, h, 1)
        xs = torch.arange(w, device=x.device).view(1, 1, w)
        half = self.cutout // 2
        inside = (ys >= cy - half) & (ys < cy - half + self.cutout) & (xs >= cx - half) & (xs < cx - half + self.cutout)
        return x * (~inside).unsqueeze(1).to(x.dtype)

    def epoch(self, g: torch.Generator | None, shard: tuple[int, int] = (0, 1)):
        """Global batches in a seeded order, each of the size `batch_size` has when it is drawn; under
        torchrun each of `world` ranks takes every world-th image of each batch (`shard = (rank, world)`),
        so the recipe's batch size is the global one."""
        n = len(self.y)
        rank, world = shard
        order = torch.randperm(n, generator=g).to(self.y.device) if g is not None else torch.arange(n, device=self.y.device)
        start = 0
        # `batch_size` is read afresh for every batch: a search may change it between steps (PR-DARTS
        # sizes its batches to the accelerator's memory); with a fixed size this is the plain slicing.
        while start < n and not (self.drop_last and n - start < self.batch_size):
            idx = order[start:start + self.batch_size][rank::world]
            start += self.batch_size
            x = self.x[idx]
            if self.image_transform is not None:
                x = torch.stack([self.image_transform(img) for img in x])
            x = x.float().div_(255)
            if self.augment:
                x = self.crop_flip(x, g)
            x = (x - self.mean) / self.std
            if self.cutout:
                x = self.apply_cutout(x, g)
            yield x, self.y[idx]

