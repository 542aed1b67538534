"""The search loop every method shares: data, optimizers, pruning hand-off, per-epoch history,
checkpoints and resume, and the files of `results/search/<method>/seed<k>/`."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nasflow import faults, jobs
from nasflow import io as nio
from nasflow import track
from nasflow.catalog.datasets import dataset_info
from nasflow.data.datasets import load
from nasflow.data.loader import Batches, epoch_generator, normalisation
from nasflow.data.splits import stratified_split, stratified_subset
from nasflow.errors import NasflowError
from nasflow.progress import Progress
from nasflow.runtime import device_name, load_checkpoint, prepare_run_dir, resolve_device, set_threads
from nasflow.search.policies.base import normalised_entropy
from nasflow.search.supernet import SpaceConfig, Supernet, rebuild_optimizer
from nasflow.space.counting import architecture_entry
from nasflow.study import study_of

# The engine's own history.csv columns; a method adds its declared ones (nasflow.catalog.methods).
HISTORY_COLUMNS = ["epoch", "phase", "steps", "alive_candidates", "mixed_edges", "sparsity", "entropy", "entropy_normal", "entropy_reduce",
                   "ops_run", "train_loss", "train_error", "val_error", "val_loss", "epoch_seconds",
                   "val_seconds", "lr"]
CHECKPOINT_VERSION = 1


def restore_pruned(net: Supernet) -> None:
    for g in net.groups.values():
        g.restore_pruned()


def architecture_step(policy, net: Supernet, a_opt, train_batch, val_batch, w_opt) -> float:
    """The architecture optimizer's step. The policy only computes the gradients; the step, and putting
    pruned alphas back where pruning left them (Adam moves a parameter whose gradient is zero, and
    weight decay pulls it), happen here, so no method can forget them."""
    a_opt.zero_grad(set_to_none=True)
    loss = policy.arch_gradients(net, train_batch, val_batch, w_opt)
    a_opt.step()
    restore_pruned(net)
    return loss


def weight_step(policy, net: Supernet, w_opt, x, y, grad_clip: float, guard=lambda loss: loss):
    """One step of the network weights with alpha fixed; `guard` sees the loss before backward (fault
    injection and the finite-loss check). Returns the loss and logits, detached."""
    weights = {k: w.detach() for k, w in policy.weights(net).items()}
    w_opt.zero_grad(set_to_none=True)
    logits = policy.forward(net, x, weights)
    loss = guard(F.cross_entropy(logits, y))
    loss.backward()
    clip_gradients(w_opt, grad_clip)
    w_opt.step()
    return loss.detach(), logits.detach()


def clip_gradients(w_opt, grad_clip: float | None) -> None:
    if grad_clip is not None:  # null: no clipping (GOLD-NAS, appendix B.1)
        torch.nn.utils.clip_grad_norm_(w_opt.param_groups[0]["params"], grad_clip)


def bilevel_step(policy, net: Supernet, w_opt, a_opt, batch, val_batch, grad_clip: float,
                 guard=lambda loss: loss, guard_alpha=lambda loss: None):
    """DARTS and ASAP: alpha on a batch of the alpha half (before or after the weights, as the method
    says; none in grace epochs), the weights on the training batch. `nasflow bench search` times this."""
    search = val_batch is not None
    if search and policy.alpha_first:
        guard_alpha(architecture_step(policy, net, a_opt, batch, val_batch, w_opt))
    loss, logits = weight_step(policy, net, w_opt, *batch, grad_clip, guard)
    if search and not policy.alpha_first:
        guard_alpha(architecture_step(policy, net, a_opt, batch, val_batch, w_opt))
    return loss, logits


def training_split(labels: np.ndarray, s: dict, data: dict, first_fraction: float | None,
                   second_fraction: float | None = None):
    """Indices of the training images that train the weights, and of those held out (alpha's half of a
    bi-level search, a one-level search's validation part, the random baseline's scoring images), or None
    when nothing is held out (`first_fraction` None). The held-out part is the rest of every class, or
    with `second_fraction` that fraction of every class, disjoint from the first (EnTranNAS on
    ImageNet-style data: 10 % and another 10 %, appendix A.1). Subsets and parts are drawn per class
    with data.split_seed."""
    from nasflow.data.folders import stratified_parts

    pool = (stratified_subset(labels, per_class=s["subset_per_class"], seed=data["split_seed"])
            if s["subset_per_class"] else np.arange(len(labels)))
    if first_fraction is None:
        return pool, None
    if second_fraction is not None:
        first, second = stratified_parts(labels[pool], (first_fraction, second_fraction), data["split_seed"])
    else:
        first, second = stratified_split(labels[pool], first_fraction, data["split_seed"])
    return pool[first], pool[second]


def weights_fraction(one_level: bool, s: dict, data: dict) -> float | None:
    """The fraction of the training images that trains the weights: a bi-level search gives the rest to
    alpha (or `arch_fraction`, see below), and takes the fraction from its own settings where they give
    one (EnTranNAS's `imagenet:` block: 10 %, appendix A.1), else data.weights_fraction; a one-level
    search trains on all of them unless `val_fraction` holds a part out to measure it (GOLD-NAS 3.1:
    the test set stays invisible during the search)."""
    if not one_level:
        return data["weights_fraction"] if s.get("weights_fraction") is None else s["weights_fraction"]
    return 1.0 - s["val_fraction"] if s["val_fraction"] else None


def arch_fraction(one_level: bool, s: dict) -> float | None:
    """The fraction of every class that trains alpha in a bi-level search, disjoint from the weights'
    images, where the method's settings give one (EnTranNAS's `imagenet:` block: another 10 %, appendix
    A.1); None: the rest of the images (and for a one-level search, which has no architecture images)."""
    return None if one_level else s.get("arch_fraction")


def search_augmentation(s: dict):
    """AutoAugment on the training images when the search asks for it (GOLD-NAS on CIFAR-10; not on
    ImageNet-style data, appendix C, where the policy would be ImageNet's)."""
    if not s["autoaugment"]:
        return None
    from torchvision.transforms import v2

    imagenet = dataset_info(s["dataset"]).style == "imagenet"
    return v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET if imagenet else v2.AutoAugmentPolicy.CIFAR10)


@torch.no_grad()
def evaluate(logits_of, batches) -> dict:
    """Mean cross-entropy and top-1 error (percent) of `logits_of(x)` over `batches`, unaugmented."""
    loss_sum = wrong = seen = 0
    for x, y in batches.epoch(None):
        logits = logits_of(x)
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        wrong += int((logits.argmax(1) != y).sum())
        seen += len(y)
    return {"val_loss": loss_sum / seen, "val_error": 100.0 * wrong / seen}


def write_results(run, found: list[tuple], stopped: str, epochs: int, seconds: float, files=(),
                  entry_extra: dict | None = None, summary_extra: dict | None = None, at_bound: bool = True) -> dict:
    """A finished search's files: one genotype per architecture found ((epoch, genotype) pairs, the last
    is the search's final cell, also genotype.json), architectures.json with their sizes, search.json;
    logged to the run's MLflow run with `files`. `run` holds method, seed, s, out, device, tracker."""
    s, out = run.s, run.out
    if not found and at_bound:
        raise NasflowError(f"{out}: the {run.method} search stopped at epoch {epochs} ({stopped}) without "
                           f"recording an architecture; its checkpoint is kept: raise search.{run.method}.epochs "
                           "and rerun with --resume")
    if not found:  # it met its own stopping rule: more epochs would not help
        raise NasflowError(f"{out}: the {run.method} search stopped at epoch {epochs} ({stopped}) without "
                           f"recording an architecture; change the settings that decide when it records "
                           f"(search.{run.method}.patience, n0, flops_min) and start it over")
    entries = []
    for i, (epoch, genotype) in enumerate(found):
        genotype.name = f"{run.method}-s{run.seed}-{i}"
        name = "genotype.json" if len(found) == 1 else f"genotype-{i}.json"
        nio.write_json(out / name, genotype.to_json())
        # A per-position genotype fixes the depth: it is evaluated at the depth it was searched at.
        layers = s["layers"] if genotype.layout == "per-position" else s["eval_layers"]
        sizes = architecture_entry(genotype, s["eval_channels"], layers, s["dataset"])
        entries.append({"id": genotype.name, "genotype": name, **sizes, "epoch": epoch, **(entry_extra or {})})
    counts = {k: entries[-1][k] for k in ("params_M", "macs_M")}
    if len(found) > 1:  # genotype.json is always the final cell
        nio.write_json(out / "genotype.json", genotype.to_json())
    nio.write_json(out / "architectures.json", entries)
    summary = {"seconds": round(seconds, 3), "device": device_name(run.device), "epochs": epochs,
               "method": run.method, "seed": run.seed, "stopped": stopped,
               "gpu_days": round(seconds / 86400, 6) if run.device.type == "cuda" else None, **(summary_extra or {})}
    nio.write_json(out / "search.json", summary)
    run.tracker.log_metrics({"search_seconds": seconds, **{f"final_{k}": v for k, v in counts.items()}})
    for name in ("genotype.json", "architectures.json", "search.json", "settings.json", *files):
        run.tracker.log_artifact(out / name)
    run.tracker.set_tags({"arch_id": genotype.name})
    return {"genotype": genotype, **summary, **counts}


class SearchRun:
    def __init__(self, params, method: str, seed: int, out: str | Path, track_runs: bool = True):
        self.params, self.method, self.seed = params, method, seed
        self.out = Path(out)
        searched = study_of(params).search_name(method)  # `method` may name a variant
        self.declared, self.s = searched.declared, searched.settings
        self.track_runs = track_runs
        self.device = resolve_device(params)
        self.inputs = study_of(params).search_inputs(method, seed)
        self.fingerprint = jobs.fingerprint(self.inputs)

    # ---- set-up ---------------------------------------------------------------------------------------
    def _folder_data(self):
        """ImageNet streamed from its class folders (it does not fit in memory). The val split is ImageNet's
        test set, so it is never read. A one-level search (GOLD-NAS) runs on `classes` classes drawn with
        data.split_seed, and progress is measured on a held-out part of the training images (val_fraction);
        a bi-level search: see `_folder_bilevel_data`."""
        from nasflow.data.folders import FolderBatches
        from nasflow.settings import Params, deep_merge

        s = self.s
        if not self.declared.one_level:
            return self._folder_bilevel_data()
        params = Params(deep_merge(self.params, {"data": {"imagenet_classes": s.get("classes")}}))
        params.base_dir = self.params.base_dir
        dataset, held = s["dataset"], s["val_fraction"]
        size = dataset_info(dataset).image_size
        self.train_batches = FolderBatches(params, dataset, "train", s["batch_size"], True, size, s["autoaugment"],
                                           self.device, hold_out=held)
        self.arch_batches = self.train_batches  # one level: alpha trains on the weights' batches
        self.val_batches = (FolderBatches(params, dataset, "train", s["batch_size"], False, size, device=self.device,
                                          hold_out=held, held_out=True) if held else None)
        if len(self.train_batches) == 0:
            raise NasflowError(f"search.batch_size {s['batch_size']} is larger than the {dataset} training images")
        self.n_classes = len(self.train_batches.classes)

    def _folder_bilevel_data(self):
        """A bi-level search on ImageNet's class folders (EnTranNAS appendix A.1, after PC-DARTS): every
        class (data.imagenet_classes and data.imagenet_fraction narrow the pool; null: all 1,000 classes,
        every image), and in each class two disjoint parts drawn with data.split_seed: `weights_fraction`
        trains the weights, `arch_fraction` (None: the rest) trains alpha. Alpha's part, unaugmented, also
        measures the search (val_error), as the in-memory halves do; ImageNet's val split is never read.
        Only methods whose `imagenet:` block gives these fractions search here (streamed batches keep their
        size for an epoch, so PR-DARTS's growing batches would not grow)."""
        from nasflow.data.folders import FolderBatches

        s, data_cfg = self.s, self.params["data"]
        if s.get("weights_fraction") is None:
            raise NasflowError(f"search.{self.method}: a bi-level search on streamed ImageNet (dataset {s['dataset']}) draws "
                               "its weight and architecture images with the fractions of its method's `imagenet:` "
                               "block (weights_fraction, arch_fraction: entranas, entranas-dst); this method has none. "
                               "Use one of those, a one-level method (gold-nas) or an in-memory dataset")
        parts = (weights_fraction(False, s, data_cfg), arch_fraction(False, s))
        size, bs = dataset_info(s["dataset"]).image_size, s["batch_size"]
        split = lambda train, part, autoaugment=False: FolderBatches(
            self.params, s["dataset"], "train", bs, train, size, autoaugment, self.device, parts=parts, part=part)
        self.train_batches = split(True, 0, s["autoaugment"])
        self.arch_batches = split(True, 1)  # augmented like the weights' images, as in memory
        self.val_batches = split(False, 1)
        if len(self.train_batches) == 0:
            raise NasflowError(f"search.batch_size {bs} is larger than the {len(self.train_batches.y)} {s['dataset']} "
                               "images of the weight split")
        self.n_classes = len(self.train_batches.classes)

    def _data(self):
        s, data_cfg = self.s, self.params["data"]
        if dataset_info(s["dataset"]).streamed:
            return self._folder_data()
        arrays = load(self.params, s["dataset"])
        labels = arrays.y_train
        mean, std = normalisation(s["dataset"], arrays.x_train)
        bs, one_level = s["batch_size"], self.declared.one_level
        w_idx, held = training_split(labels, s, data_cfg, weights_fraction(one_level, s, data_cfg),
                                     arch_fraction(one_level, s))
        # DARTS draws both halves through the training augmentation; validation is measured without it.
        self.train_batches = Batches(arrays.x_train[w_idx], labels[w_idx], bs, mean, std, True, self.device,
                                     drop_last=True, image_transform=search_augmentation(s))
        self.arch_batches = (self.train_batches if one_level else  # one level: alpha on the same batches
                             Batches(arrays.x_train[held], labels[held], bs, mean, std, True, self.device, drop_last=True))
        # Never the test set: a one-level search without val_fraction has no validation error.
        self.val_batches = None if held is None else Batches(arrays.x_train[held], labels[held], bs, mean, std,
                                                             False, self.device)
        if len(self.train_batches) == 0:
            raise NasflowError(f"search.batch_size {bs} is larger than the {len(w_idx)} images of the weight split")
        self.n_classes = arrays.num_classes

    def space_config(self, num_classes: int) -> SpaceConfig:
        """The dataset's network style picks the stem, so the supernet is the evaluation network's twin."""
        s, info = self.s, dataset_info(self.s["dataset"])
        return SpaceConfig(ops=list(s["ops"]), channels=s["channels"], layers=s["layers"], nodes=s["nodes"],
                           layout=s["layout"], cell_output=s["cell_output"], num_classes=num_classes,
                           in_channels=info.channels, feature_sharing=s["feature_sharing"],
                           bottleneck=s["bottleneck"], stem=info.style)

    def _build(self):
        torch.manual_seed(self.seed)
        self.net = Supernet(self.space_config(self.n_classes)).to(self.device)
        self.policy = self.declared.policy_class()(self.s, self.net)

    def _optimizers(self):
        s = self.s
        self.w_opt = torch.optim.SGD(self.net.weight_parameters(), lr=s["w_lr"], momentum=s["w_momentum"],
                                     weight_decay=s["w_weight_decay"])
        self.a_opt = self.policy.make_arch_optimizer(self.policy.arch_parameters(self.net))

    # ---- checkpoints ------------------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.pt"

    def _save(self, finished: bool):
        nio.save_torch(self.checkpoint_path, {
            "version": CHECKPOINT_VERSION, "fingerprint": self.fingerprint, "method": self.method,
            "seed": self.seed, "epoch": self.epoch, "finished": finished, "model": self.net.state_dict(),
            "alive": {k: g.alive.cpu() for k, g in self.net.groups.items()}, "w_opt": self.w_opt.state_dict(),
            "a_opt": self.a_opt.state_dict(), "policy": self.policy.state_dict(), "history": self.history,
            "alphas": self.alphas, "seconds": self.seconds, "run_id": self.tracker.run_id,
            "rng": torch.get_rng_state()})

    def _load(self) -> dict:
        ckpt = load_checkpoint(self.checkpoint_path, self.device, CHECKPOINT_VERSION, self.fingerprint)
        try:
            self.net.restore_pools(ckpt["model"])  # pools changed by the search need their modules first
            self.net.apply_alive({k: v.to(self.device) for k, v in ckpt["alive"].items()})
            self.net.load_state_dict(ckpt["model"])
        except (RuntimeError, KeyError) as exc:
            raise NasflowError(f"{self.checkpoint_path}: does not fit this supernet ({str(exc).splitlines()[0]})") from None
        self._optimizers()
        self.w_opt.load_state_dict(ckpt["w_opt"])
        self.a_opt.load_state_dict(ckpt["a_opt"])
        self.policy.load_state_dict(ckpt["policy"])
        torch.set_rng_state(ckpt["rng"].cpu())  # map_location put it on the run's device
        return ckpt

    def restore(self) -> dict:
        """The data, supernet and policy of a finished (or interrupted) search as its checkpoint left them,
        for measurements after the search (`nasflow consistency`)."""
        if not self.checkpoint_path.exists():
            raise NasflowError(f"{self.checkpoint_path}: no search checkpoint here (run `nasflow search` first)")
        set_threads(self.params)
        self._data()
        self._build()
        ckpt = self._load()
        self.epoch = ckpt["epoch"]
        if self.epoch:
            self.policy.begin_epoch(self.epoch)
        return ckpt

    # ---- one epoch ----------------------------------------------------------------------------------------
    def _apply_prunes(self, prunes) -> None:
        if not prunes:
            return
        for group, edge, slot in prunes:
            self.net.prune(group, edge, slot)
        self.w_opt = rebuild_optimizer(self.w_opt, self.net.weight_parameters())

    def _check(self, loss: torch.Tensor, where: str) -> None:
        if not torch.isfinite(loss):
            raise NasflowError(f"{where}: the loss became {float(loss)}; the last good checkpoint "
                               f"({self.checkpoint_path}, epoch {self.epoch - 1}) is kept")

    def _train_epoch(self, progress: Progress) -> dict:
        net, policy = self.net, self.policy
        net.train()
        lr = policy.learning_rate(self.epoch)
        for group in self.w_opt.param_groups:
            group["lr"] = lr
        train_iter = self.train_batches.epoch(epoch_generator(self.seed, self.epoch, 0))
        self._arch_iter = self.arch_batches.epoch(epoch_generator(self.seed, self.epoch, 1))
        loss_sum = wrong = seen = 0
        step = ran = 0
        while True:  # the policy may change the batch size between steps, and with it the step count
            step += 1
            self._set_batch_size(step)
            try:
                x, y = next(train_iter)
            except StopIteration:
                break
            step_fn = self._one_level_step if self.declared.one_level else self._bilevel_step
            loss, logits = step_fn(x, y, step)
            loss_sum += float(loss) * len(y)
            wrong += int((logits.argmax(1) != y).sum())
            seen += len(y)
            steps = step + (len(self.train_batches.y) - seen) // self.train_batches.batch_size  # at the current size
            progress.step(self.epoch, step, steps, alive=net.alive_candidates()[0], loss=f"{loss_sum / seen:.3f}")
            ran = step
            if policy.finished(net):  # a stopping rule met mid-epoch ends the search at this step (ASAP's Algorithm 1)
                break
        self._apply_prunes(policy.prune_after_epoch(net))
        if policy.end_epoch(net):  # new modules and a new alpha: neither optimizer knows them
            self.w_opt = policy.rebuild_weight_optimizer(self.w_opt, net.weight_parameters())
            self.a_opt = policy.make_arch_optimizer(policy.arch_parameters(net))
        return {"train_loss": loss_sum / seen, "train_error": 100.0 * wrong / seen, "lr": lr, "steps": ran}

    def _set_batch_size(self, step: int) -> None:
        size = self.policy.batch_size(step, self.device)
        if size is not None:
            self.train_batches.batch_size = self.arch_batches.batch_size = size

    def _next_arch_batch(self, step):
        try:
            return next(self._arch_iter)
        except StopIteration:  # the alpha half ran out before the weight half: draw it again
            self._arch_iter = self.arch_batches.epoch(epoch_generator(self.seed, self.epoch, 2 + step))
            return next(self._arch_iter)

    def _guard(self, step):
        def guard(loss):
            loss = faults.poisoned(loss, self.epoch, step)
            self._check(loss.detach(), f"epoch {self.epoch} step {step}")
            return loss
        return guard

    def _bilevel_step(self, x, y, step):
        """`bilevel_step`, then whatever the method prunes after a step."""
        val_batch = self._next_arch_batch(step) if self.policy.updates_alpha() else None
        guard_alpha = lambda loss: self._check(torch.tensor(loss), f"epoch {self.epoch} step {step} (alpha)")
        loss, logits = bilevel_step(self.policy, self.net, self.w_opt, self.a_opt, (x, y), val_batch,
                                    self.s["grad_clip"], self._guard(step), guard_alpha)
        self._apply_prunes(self.policy.prune_after_step(self.net))
        return loss, logits

    def _one_level_step(self, x, y, step):
        """GOLD-NAS: alpha and the weights descend one loss on the same batch."""
        net, policy = self.net, self.policy
        self.w_opt.zero_grad(set_to_none=True)
        self.a_opt.zero_grad(set_to_none=True)
        logits = policy.forward(net, x, policy.weights(net))
        loss = self._guard(step)(F.cross_entropy(logits, y) + policy.regulariser(net))
        loss.backward()
        clip_gradients(self.w_opt, self.s["grad_clip"])
        self.w_opt.step()
        self.a_opt.step()
        restore_pruned(net)
        return loss.detach(), logits.detach()

    @torch.no_grad()
    def _validate(self) -> dict:
        if self.val_batches is None:  # a one-level search with nothing held out
            return {"val_loss": float("nan"), "val_error": float("nan")}
        self.net.eval()
        weights = self.policy.weights(self.net)
        return evaluate(lambda x: self.policy.forward(self.net, x, weights), self.val_batches)

    def _architecture_record(self) -> dict:
        net, policy = self.net, self.policy
        alive, total = net.alive_candidates()
        weights = policy.weights(net)
        entropy = {}
        for kind in ("normal", "reduce"):
            values = [normalised_entropy(weights[k].detach(), policy.n_candidates)
                      for k, g in net.groups.items() if g.reduction == (kind == "reduce")]
            entropy[f"entropy_{kind}"] = float(np.mean(values)) if values else float("nan")
        return {"alive_candidates": alive, "mixed_edges": sum(int((g.alive.sum(1) > 1).sum()) for g in net.groups.values()),
                "sparsity": alive / total, "entropy": float(np.nanmean(list(entropy.values()))), **entropy,
                "ops_run": net.ops_run()}

    # ---- the run ------------------------------------------------------------------------------------------
    def run(self, resume: bool = False, replace_stale: bool = False) -> dict:
        if not self.declared.trains_supernet:  # a baseline's policy names the class that runs it
            return self.declared.policy_class().runner(self).run(resume, replace_stale)
        prepare_run_dir(self.out, self.checkpoint_path, self.inputs, resume, replace_stale, self.params, "search")
        self._data()
        self._build()
        self._optimizers()
        self.history, self.alphas, self.seconds, self.epoch = [], {}, 0.0, 0
        ckpt = self._load() if resume and self.checkpoint_path.exists() else None
        if ckpt:
            self.history, self.alphas, self.seconds, self.epoch = ckpt["history"], ckpt["alphas"], ckpt["seconds"], ckpt["epoch"]
            if self.epoch:  # the policy's per-epoch state (ASAP's temperature) as it was when saved
                self.policy.begin_epoch(self.epoch)
        self.out.mkdir(parents=True, exist_ok=True)
        self.tracker = track.start_run(
            self.params, f"search-{self.method}-s{self.seed}",
            tags={"stage": "search", "method": self.method, "seed": self.seed, "dataset": self.s["dataset"]},
            logged_params={"search": self.s, "seed": self.seed, "method": self.method},
            enabled=self.track_runs, resume_run_id=ckpt["run_id"] if ckpt else None)
        with track.finishing(self.tracker):
            # A finished checkpoint goes on only where the search's length is a bound it has not met
            # (GOLD-NAS that stopped at search.gold-nas.epochs with an empty front, resumed with more).
            if not (ckpt and ckpt["finished"]) or (self.epoch < self.s["epochs"] and not self.policy.finished(self.net)):
                self._loop()
            return self._finish()

    def _loop(self) -> None:
        s = self.s
        mode = self.params.get("runtime", {}).get("progress", "auto")
        progress = Progress(f"search {self.method} s{self.seed}", s["epochs"], mode)
        try:
            self._epochs(progress)
        finally:
            progress.close()

    def _epochs(self, progress: Progress) -> None:
        s = self.s
        while self.epoch < s["epochs"]:
            self.epoch += 1
            self.policy.begin_epoch(self.epoch)
            started = time.perf_counter()
            row = {"epoch": self.epoch}
            row.update(self._train_epoch(progress))
            row.update(self.policy.record())  # after the epoch's pruning (lambda, n_pruned, FLOPs)
            row["epoch_seconds"] = time.perf_counter() - started
            self.seconds += row["epoch_seconds"]  # search work only: the monitoring below is not counted
            started = time.perf_counter()
            row.update(self._validate())
            row["val_seconds"] = time.perf_counter() - started
            row.update(self._architecture_record())
            self.history.append(row)
            for name, g in self.net.groups.items():
                # tensors, not numpy arrays: the checkpoint holds them and loads weights-only
                self.alphas[f"{name}_alpha_e{self.epoch:03d}"] = g.alpha.detach().cpu().clone()
                self.alphas[f"{name}_alive_e{self.epoch:03d}"] = g.alive.cpu().clone()
            done = self.policy.finished(self.net)
            self._write_progress_files()
            self._save(finished=done or self.epoch == s["epochs"])
            self.tracker.log_metrics({k: v for k, v in row.items() if k not in ("epoch", "phase")}, step=self.epoch)
            progress.epoch_done(self.epoch, phase=row["phase"], alive=row["alive_candidates"],
                                val_error="-" if row["val_error"] != row["val_error"] else f"{row['val_error']:.1f}%", seconds=f"{row['epoch_seconds']:.1f}")
            if done:
                return

    def _write_progress_files(self):
        nio.write_csv(self.out / "history.csv", self.history, HISTORY_COLUMNS + list(self.declared.columns))
        with nio.atomic_path(self.out / "alphas.npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, ops=np.array([c.label() for c in self.net.space.candidates]),
                         groups=np.array(list(self.net.groups)),
                         **{k: v.numpy() for k, v in self.alphas.items()})
        for name, content in self.policy.files().items():
            nio.write_json(self.out / name, content)

    def _finish(self) -> dict:
        s = self.s
        self._write_progress_files()
        reason = self.policy.stop_reason if self.policy.finished(self.net) else f"{s['epochs']} epochs"
        return write_results(self, self.policy.architectures(self.net), reason, self.epoch, self.seconds,
                             files=("history.csv", *self.policy.files()),
                             at_bound=not self.policy.finished(self.net))
