"""In-memory batches and their augmentation."""
import torch


def test_loader_flip_switch_and_cutout():
    from nasflow.data.loader import Batches

    x = torch.arange(2 * 8 * 8 * 3, dtype=torch.uint8).reshape(2, 8, 8, 3).numpy()
    mean, std = torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1)
    plain = Batches(x, [0, 1], 2, mean, std, augment=True, pad=0, flip=False)
    got, _ = next(plain.epoch(torch.Generator().manual_seed(0)))
    order = torch.randperm(2, generator=torch.Generator().manual_seed(0))
    expected = torch.from_numpy(x).permute(0, 3, 1, 2).float().div(255)[order]
    assert torch.equal(got, expected)  # no padding, no flip: the images as they are
    cut = Batches(x, [0, 1], 2, mean, std, augment=False, cutout=4)
    got, _ = next(cut.epoch(torch.Generator().manual_seed(0)))
    zeros = (got == 0).all(1)  # one square per image
    assert 0 < int(zeros[0].sum()) <= 16 and 0 < int(zeros[1].sum()) <= 16
