"""Training an evaluation network to a recipe (retraining and transfer): `nasflow train`.

Writes `metrics.json`, `history.csv` and `checkpoint.pt` into `results/train/<arch_id>/<dataset>/seed<k>/`,
checkpointing every epoch; `--resume` continues a killed run to the same final weights on the CPU
(batch order, augmentation and the RNG state all come back from the checkpoint or the seed)."""
from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nasflow import faults, jobs, track
from nasflow import io as nio
from nasflow.catalog.cells import SEARCHED_ID
from nasflow.catalog.datasets import dataset_info
from nasflow.data.datasets import load
from nasflow.data.folders import FolderBatches
from nasflow.data.loader import Batches, epoch_generator, normalisation
from nasflow.data.splits import stratified_split, stratified_subset
from nasflow.errors import NasflowError
from nasflow.progress import Progress
from nasflow.runtime import (
    device_name,
    load_checkpoint,
    prepare_run_dir,
    resolve_device,
)
from nasflow.catalog.sizes import recipe_network
from nasflow.space.counting import count_network
from nasflow.catalog.genotype import Genotype, load_genotype
from nasflow.space.network import Logits, build_network
from nasflow.study import study_of
from nasflow.train.distributed import Context
from nasflow.train.schedules import drop_path_probability, learning_rate

HISTORY_COLUMNS = ["epoch", "lr", "drop_path", "train_loss", "train_error", "test_loss", "top1_error", "top5_error",
                   "epoch_seconds", "images_per_second"]
CHECKPOINT_VERSION = 1
def _image_transform(r: dict, channels: int):
    """Per-image uint8 policies: AutoAugment (torchvision's CIFAR-10 policy) or colour jitter."""
    from torchvision.transforms import v2

    if r["autoaugment"]:
        return v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)
    if r["color_jitter"] > 0:
        j = r["color_jitter"]
        return v2.ColorJitter(brightness=j, contrast=j, saturation=j if channels == 3 else 0)
    return None


def topk_errors(logits: torch.Tensor, y: torch.Tensor, ks=(1, 5)) -> list[int]:
    """Wrong predictions at each k (k capped at the number of classes)."""
    top = logits.topk(min(max(ks), logits.size(1)), dim=1).indices
    hit = top == y[:, None]
    return [int((~hit[:, :min(k, logits.size(1))].any(1)).sum()) for k in ks]


class TrainRun:
    def __init__(self, params, genotype_ref: str, dataset: str, recipe: str, seed: int, out: str | Path,
                 arch_id: str | None = None, track_runs: bool = True):
        self.params, self.dataset, self.seed, self.out = params, dataset, seed, Path(out)
        self.info = dataset_info(dataset)
        study = study_of(params)
        self.r = study.recipe_settings(recipe)
        self.genotype: Genotype = load_genotype(genotype_ref)
        self.inputs = study.train_inputs(jobs.genotype_content(genotype_ref), dataset, recipe, seed)
        self.fingerprint = jobs.fingerprint(self.inputs)
        if self.r["cell_output"]:
            self.genotype.cell_output = self.r["cell_output"]
        if self.genotype.layout == "per-position":  # one cell per layer: the genotype fixes the depth
            self.r["layers"] = len(self.genotype.cells)
        self.arch_id = arch_id or self.genotype.name or Path(str(genotype_ref)).stem
        self.dist = Context()
        self.track_runs = track_runs and self.dist.main
        self.device = self.dist.start(resolve_device(params))

    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.pt"

    def _data(self):
        r, info = self.r, self.info
        if info.streamed:
            if r["holdout_fraction"]:
                raise NasflowError(f"recipe {r['name']}: holdout_fraction on {self.dataset}, streamed from class "
                                   "folders, is not supported; a selection by short retraining runs on an in-memory "
                                   "dataset")
            self.train_batches = FolderBatches(self.params, self.dataset, "train", r["batch_size"], True,
                                               info.image_size, r["autoaugment"], self.device)
            self.test_batches = FolderBatches(self.params, self.dataset, "val", r["batch_size"], False, info.image_size,
                                              device=self.device)
            self.n_train, self.n_test = len(self.train_batches.dataset), len(self.test_batches.dataset)
            self.contract = self._contract(self.train_batches.classes, info.mean, info.std,
                                           resize=round(info.image_size * 256 / 224), center_crop=info.image_size)
            return
        arrays = load(self.params, self.dataset)
        seed = self.params["data"]["split_seed"]
        tr = (stratified_subset(arrays.y_train, per_class=r["train_subset_per_class"], seed=seed)
              if r["train_subset_per_class"] else np.arange(len(arrays.y_train)))
        x_eval, y_eval = arrays.x_test, arrays.y_test
        if r["holdout_fraction"]:  # a selection's short training: judged on training images, the test set unseen
            kept, held = stratified_split(arrays.y_train[tr], 1 - r["holdout_fraction"], seed)
            tr, x_eval, y_eval = tr[kept], arrays.x_train[tr[held]], arrays.y_train[tr[held]]
        te = (stratified_subset(y_eval, per_class=r["test_subset_per_class"], seed=seed)
              if r["test_subset_per_class"] else np.arange(len(y_eval)))
        mean, std = normalisation(self.dataset, arrays.x_train)
        self.train_batches = Batches(arrays.x_train[tr], arrays.y_train[tr], r["batch_size"], mean, std,
                                     augment=True, device=self.device, drop_last=len(tr) > r["batch_size"],
                                     pad=r["crop_padding"], cutout=r["cutout"],
                                     image_transform=_image_transform(r, info.channels), flip=r["flip"])
        self.test_batches = Batches(x_eval[te], y_eval[te], max(r["batch_size"], 256), mean, std,
                                    augment=False, device=self.device)
        self.n_train, self.n_test = len(tr), len(te)
        self.contract = self._contract(arrays.classes, mean.flatten().tolist(), std.flatten().tolist())

    def _contract(self, classes, mean, std, **preprocess) -> dict:
        """What the logged model expects: float NCHW images of this size, pixels scaled to [0, 1], then
        normalised per channel with this mean and std; logits over these classes, in this order."""
        info = self.info
        return {"dataset": self.dataset, "image_size": info.image_size, "channels": info.channels,
                "pixel_scale": "1/255", "mean": [round(float(m), 6) for m in mean],
                "std": [round(float(s), 6) for s in std], "classes": [str(c) for c in classes], **preprocess,
                "output": "logits"}

    @property
    def selection(self) -> bool:
        """A `best_of` selection's short training (train.selection_recipe): it holds training images out
        and is judged on them, so MLflow names it and its errors apart from a retraining's."""
        return bool(self.r["holdout_fraction"])

    def _metric_names(self, row: dict) -> dict:
        """The evaluation's metrics under names that say which images they measured."""
        if not self.selection:
            return row
        names = {"test_loss": "holdout_loss", "top1_error": "holdout_error", "top5_error": "holdout_top5_error"}
        return {names.get(k, k): v for k, v in row.items()}

    def _build(self):
        r, info = self.r, self.info
        torch.manual_seed(self.seed)
        extra = {"se_ratio": r["se_ratio"]}
        style = r["style"] or info.style
        if style == "imagenet":
            extra["stem_reductions"] = r["stem_reductions"]
        self.net = build_network(self.genotype, style, c=r["channels"], layers=r["layers"], num_classes=info.num_classes,
                                 auxiliary=r["auxiliary_weight"] > 0, in_channels=info.channels,
                                 image_size=info.image_size, **extra).to(self.device)
        if r["channels_last"]:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.step_net = self.dist.wrap(self.net, self.device)  # what the training steps call
        self.opt = torch.optim.SGD(self.net.parameters(), lr=r["lr"], momentum=r["momentum"],
                                   weight_decay=r["weight_decay"], nesterov=r["nesterov"])

    def _save(self):
        nio.save_torch(self.checkpoint_path, {
            "version": CHECKPOINT_VERSION, "fingerprint": self.fingerprint, "epoch": self.epoch,
            "model": self.net.state_dict(), "opt": self.opt.state_dict(), "history": self.history,
            "seconds": self.seconds, "best": self.best, "run_id": self.tracker.run_id, "rng": torch.get_rng_state()})

    def _resume(self) -> dict:
        ckpt = load_checkpoint(self.checkpoint_path, self.device, CHECKPOINT_VERSION, self.fingerprint)
        try:
            self.net.load_state_dict(ckpt["model"])
            self.opt.load_state_dict(ckpt["opt"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise NasflowError(f"{self.checkpoint_path}: does not fit this network ({str(exc).splitlines()[0]})") from None
        torch.set_rng_state(ckpt["rng"].cpu())  # map_location put it on the run's device
        self.epoch, self.history, self.seconds, self.best = ckpt["epoch"], ckpt["history"], ckpt["seconds"], ckpt["best"]
        return ckpt

    def _autocast(self):
        if self.r["amp"] == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return torch.autocast(self.device.type, enabled=False)

    def _train_epoch(self, progress: Progress) -> dict:
        r, net = self.r, self.net
        net.train()
        net.drop_path_prob = drop_path_probability(r, self.epoch - 1)
        step_net = self.step_net
        steps = len(self.train_batches)
        loss_sum = wrong = seen = 0
        started = time.perf_counter()
        batches = self.train_batches.epoch(epoch_generator(self.seed, self.epoch), self.dist.shard)
        for step, (x, y) in enumerate(batches, start=1):
            lr = learning_rate(r, self.epoch - 1, step - 1, steps)
            for group in self.opt.param_groups:
                group["lr"] = lr
            if r["channels_last"]:
                x = x.contiguous(memory_format=torch.channels_last)
            self.opt.zero_grad(set_to_none=True)
            with self._autocast():
                logits, aux = step_net(x)
                loss = F.cross_entropy(logits, y, label_smoothing=r["label_smoothing"])
                if aux is not None:
                    loss = loss + r["auxiliary_weight"] * F.cross_entropy(aux, y, label_smoothing=r["label_smoothing"])
            loss = faults.poisoned(loss, self.epoch, step)
            finite = bool(torch.isfinite(loss.detach()))
            if self.dist.enabled:  # every rank stops together (one alone would leave the rest waiting)
                finite = self.dist.sum([0.0 if finite else 1.0], self.device)[0] == 0
            if not finite:
                raise NasflowError(f"epoch {self.epoch} step {step}: the loss became {float(loss)}; the last good "
                                   f"checkpoint ({self.checkpoint_path}, epoch {self.epoch - 1}) is kept")
            loss.backward()
            if r["grad_clip"]:
                torch.nn.utils.clip_grad_norm_(net.parameters(), r["grad_clip"])
            self.opt.step()
            loss_sum += float(loss.detach()) * len(y)
            wrong += int((logits.detach().argmax(1) != y).sum())
            seen += len(y)
            progress.step(self.epoch, step, steps, loss=f"{loss_sum / seen:.3f}",
                          rate=f"{seen / (time.perf_counter() - started):.0f} img/s")
        seconds = time.perf_counter() - started
        loss_sum, wrong, seen = self.dist.sum([loss_sum, wrong, seen], self.device)
        return {"lr": lr, "drop_path": net.drop_path_prob, "train_loss": loss_sum / seen,
                "train_error": 100.0 * wrong / seen, "images_per_second": seen / seconds}

    @torch.no_grad()
    def evaluate(self) -> dict:
        self.net.eval()
        loss_sum, wrong1, wrong5, seen = 0.0, 0, 0, 0
        for x, y in self.test_batches.epoch(None, self.dist.shard):
            if self.r["channels_last"]:
                x = x.contiguous(memory_format=torch.channels_last)
            with self._autocast():
                logits, _ = self.net(x)
            logits = logits.float()
            loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
            w1, w5 = topk_errors(logits, y)
            wrong1, wrong5, seen = wrong1 + w1, wrong5 + w5, seen + len(y)
        loss_sum, wrong1, wrong5, seen = self.dist.sum([loss_sum, wrong1, wrong5, seen], self.device)
        return {"test_loss": loss_sum / seen, "top1_error": 100.0 * wrong1 / seen, "top5_error": 100.0 * wrong5 / seen}

    def run(self, resume: bool = False, replace_stale: bool = False) -> dict:
        if self.dist.main:
            prepare_run_dir(self.out, self.checkpoint_path, self.inputs, resume, replace_stale, self.params,
                            "training")
        self.dist.barrier()
        self._data()
        self._build()
        self.epoch, self.history, self.seconds, self.best = 0, [], 0.0, float("inf")
        ckpt = self._resume() if resume and self.checkpoint_path.exists() else None
        self.out.mkdir(parents=True, exist_ok=True)
        r = self.r
        searched = SEARCHED_ID.match(self.arch_id)
        stage = "short-retrain" if self.selection else "train"
        self.tracker = track.start_run(
            self.params, f"{stage}-{self.arch_id}-{self.dataset}-s{self.seed}",
            tags={"stage": stage, "arch_id": self.arch_id, "dataset": self.dataset, "seed": self.seed,
                  "recipe": r["name"], "method": searched["method"] if searched else "published",
                  **({"selection": searched["method"] if searched else self.arch_id} if self.selection else {})},
            logged_params={"train": r, "seed": self.seed, "dataset": self.dataset, "arch_id": self.arch_id},
            enabled=self.track_runs, resume_run_id=ckpt["run_id"] if ckpt else None)
        try:
            with track.finishing(self.tracker):
                self._loop()
                return self._finish()
        finally:
            self.dist.stop()

    def _loop(self):
        r = self.r
        progress = Progress(f"train {self.arch_id} {self.dataset} s{self.seed}", r["epochs"],
                            self.params.get("runtime", {}).get("progress", "auto") if self.dist.main else "none")
        while self.epoch < r["epochs"]:
            self.epoch += 1
            started = time.perf_counter()
            row = {"epoch": self.epoch, **self._train_epoch(progress), **self.evaluate()}
            row["epoch_seconds"] = time.perf_counter() - started
            self.seconds += row["epoch_seconds"]
            self.best = min(self.best, row["top1_error"])
            self.history.append(row)
            if self.dist.main:
                nio.write_csv(self.out / "history.csv", self.history, HISTORY_COLUMNS)
                self._save()
            self.dist.barrier()
            self.tracker.log_metrics(self._metric_names({k: v for k, v in row.items() if k != "epoch"}), step=self.epoch)
            progress.epoch_done(self.epoch, top1_error=f"{row['top1_error']:.2f}%",
                                rate=f"{row['images_per_second']:.0f} img/s")
        progress.close()

    def _finish(self) -> dict:
        r, last = self.r, self.history[-1]
        counts = count_network(self.genotype, **recipe_network(r, self.dataset, self.genotype))
        metrics = {"arch_id": self.arch_id, "dataset": self.dataset, "seed": self.seed, "recipe": r["name"],
                   "top1_error": last["top1_error"], "top5_error": last["top5_error"], "best_top1_error": self.best,
                   **counts, "epochs": self.epoch, "train_seconds": round(self.seconds, 3),
                   "device": device_name(self.device), "processes": self.dist.world, "train_images": self.n_train,
                   "test_images": self.n_test,
                   # top1_error's images: a recipe with holdout_fraction never sees the test set
                   "evaluated_on": "holdout" if r["holdout_fraction"] else "test"}
        if not self.dist.main:
            return metrics
        nio.write_json(self.out / "metrics.json", metrics)
        nio.write_json(self.out / "genotype.json", self.genotype.to_json())
        final = self._metric_names({"top1_error": metrics["top1_error"], "top5_error": metrics["top5_error"]})
        self.tracker.log_metrics({**{f"final_{k}": v for k, v in final.items()},
                                  "params_M": counts["params_M"], "macs_M": counts["macs_M"]})
        for name in ("metrics.json", "history.csv", "genotype.json", "settings.json"):
            self.tracker.log_artifact(self.out / name)
        x, _ = next(iter(self.test_batches.epoch(None)))
        self.tracker.log_model(Logits(copy.deepcopy(self.net)).cpu().eval(), x[:2].float().cpu().numpy(),
                               self.contract, {"stage": "short-retrain" if self.selection else "train",
                                               "arch_id": self.arch_id, "dataset": self.dataset, "seed": self.seed},
                               extra_files=[self.out / "genotype.json"])
        return metrics
