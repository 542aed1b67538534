"""Classify image files with a network nasflow logged to MLflow; nasflow need not be installed.

    python usage_example.py runs:/<run_id>/model cat.png ship.jpg ...

Run it where `mlflow ui` runs (the project directory, whose mlflow.db is MLflow's default store) or
with MLFLOW_TRACKING_URI set. Needs torch, mlflow and Pillow. The model's input contract is its
MLmodel's `metadata.nasflow` (also the logged model's params in `mlflow ui`): images as float NCHW
tensors of `image_size` pixels and `channels` channels, pixels scaled to [0, 1], then normalised per
channel with `mean` and `std`; out come logits over `classes`, in that order. ImageNet-style models
also name `resize` (shorter side) and `center_crop`. Prints one JSON line per image.
"""
import json
import sys

import mlflow
import mlflow.pytorch
import numpy as np
import torch
from PIL import Image


def read_image(path: str, contract: dict) -> torch.Tensor:
    """One image as the network expects it: C x H x W, normalised."""
    image = Image.open(path).convert("L" if contract["channels"] == 1 else "RGB")
    size = contract["image_size"]
    if "resize" in contract:  # ImageNet's evaluation: shorter side to `resize`, then the centre square
        scale = contract["resize"] / min(image.size)
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
        left, top = (image.width - contract["center_crop"]) // 2, (image.height - contract["center_crop"]) // 2
        image = image.crop((left, top, left + contract["center_crop"], top + contract["center_crop"]))
    elif image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).reshape(size, size, -1).permute(2, 0, 1)
    mean = torch.tensor(contract["mean"]).view(-1, 1, 1)
    std = torch.tensor(contract["std"]).view(-1, 1, 1)
    return (pixels - mean) / std


def main(uri: str, paths: list[str]) -> None:
    contract = mlflow.models.get_model_info(uri).metadata["nasflow"]
    model = mlflow.pytorch.load_model(uri, map_location="cpu")
    model.eval()
    with torch.no_grad():
        probabilities = model(torch.stack([read_image(p, contract) for p in paths])).softmax(1)
    for path, p in zip(paths, probabilities):
        k = int(p.argmax())
        print(json.dumps({"image": path, "class": contract["classes"][k], "index": k,
                          "probability": round(float(p[k]), 4)}))


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
