"""The search loop every method that trains the supernet shares: optimizers, each epoch's steps (the
policy's own, nasflow.search.steps), the pruning hand-off, per-epoch history, checkpoints and resume.
The images come from nasflow.search.splits, the files from nasflow.search.results; a method that
trains no supernet runs its own search (`SearchPolicy.runner`)."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from nasflow import faults, jobs
from nasflow import io as nio
from nasflow import track
from nasflow.catalog.datasets import dataset_info
from nasflow.data.loader import epoch_generator
from nasflow.errors import NasflowError
from nasflow.progress import Progress
from nasflow.runtime import load_checkpoint, prepare_run_dir, resolve_device, set_threads
from nasflow.search.results import architecture_record, write_progress_files, write_results
from nasflow.search.splits import search_data
from nasflow.search.steps import StepContext, evaluate
from nasflow.search.supernet import SpaceConfig, Supernet, rebuild_optimizer
from nasflow.study import study_of

CHECKPOINT_VERSION = 1


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
    def _data(self):
        data = search_data(self.params, self.method, self.s, self.declared.one_level, self.device)
        self.train_batches, self.arch_batches, self.val_batches = data.train, data.arch, data.val
        self.n_classes = data.n_classes

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

    def _train_epoch(self, progress: Progress, validate=None) -> dict:
        """One epoch's steps, then the policy's end of the epoch. `validate` (a callable returning the
        validation columns) runs between them where the policy measures before `end_epoch`."""
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
            loss, logits = policy.step(self._step_context(step), x, y)
            self._apply_prunes(policy.prune_after_step(net))
            loss_sum += float(loss) * len(y)
            wrong += int((logits.argmax(1) != y).sum())
            seen += len(y)
            steps = step + (len(self.train_batches.y) - seen) // self.train_batches.batch_size  # at the current size
            progress.step(self.epoch, step, steps, alive=net.alive_candidates()[0], loss=f"{loss_sum / seen:.3f}")
            ran = step
            if policy.finished(net):  # a stopping rule met mid-epoch ends the search at this step (ASAP's Algorithm 1)
                break
        row = {"train_loss": loss_sum / seen, "train_error": 100.0 * wrong / seen, "lr": lr, "steps": ran}
        if validate is not None and policy.validate_before_end_epoch:
            row.update(validate())  # the supernet this epoch trained (PR-DARTS: before prune and replace)
        self._apply_prunes(policy.prune_after_epoch(net))
        if policy.end_epoch(net):  # new modules and a new alpha: neither optimizer knows them
            self.w_opt = policy.rebuild_weight_optimizer(self.w_opt, net.weight_parameters())
            self.a_opt = policy.make_arch_optimizer(policy.arch_parameters(net))
        return row

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

    def _step_context(self, step: int) -> StepContext:
        guard_alpha = lambda loss: self._check(torch.tensor(loss), f"epoch {self.epoch} step {step} (alpha)")
        return StepContext(self.net, self.w_opt, self.a_opt, self.s["grad_clip"],
                           arch_batch=lambda: self._next_arch_batch(step), guard=self._guard(step),
                           guard_alpha=guard_alpha, epoch=self.epoch, step=step)

    def _timed_validation(self) -> dict:
        started = time.perf_counter()
        row = self._validate()
        row["val_seconds"] = time.perf_counter() - started
        return row

    @torch.no_grad()
    def _validate(self) -> dict:
        if self.val_batches is None:  # a one-level search with nothing held out
            return {"val_loss": float("nan"), "val_error": float("nan")}
        self.net.eval()
        weights = self.policy.weights(self.net)
        return evaluate(lambda x: self.policy.forward(self.net, x, weights), self.val_batches)

    # ---- the run ------------------------------------------------------------------------------------------
    def run(self, resume: bool = False, replace_stale: bool = False) -> dict:
        runner = self.declared.policy_class().runner
        if (runner is None) != self.declared.trains_supernet:  # the planning reads the flag, this run the policy
            raise NasflowError(f"search method {self.declared.name!r}: its declaration says trains_supernet="
                               f"{self.declared.trains_supernet}, but its policy names "
                               f"{'no runner' if runner is None else 'a runner'}; a method that trains no supernet "
                               "needs both, one that does neither")
        if runner is not None:
            return runner(self).run(resume, replace_stale)
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
            row.update(self._train_epoch(progress, self._timed_validation))
            row.update(self.policy.record())  # after the epoch's pruning (lambda, n_pruned, FLOPs)
            # search work only: the monitoring (validation, before or after the epoch's end) is not counted
            row["epoch_seconds"] = time.perf_counter() - started - row.get("val_seconds", 0.0)
            self.seconds += row["epoch_seconds"]
            if "val_error" not in row:
                row.update(self._timed_validation())
            row.update(architecture_record(self.net, self.policy))
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
        write_progress_files(self.out, self.history, self.declared.columns, self.net, self.alphas, self.policy)

    def _finish(self) -> dict:
        s = self.s
        self._write_progress_files()
        reason = self.policy.stop_reason if self.policy.finished(self.net) else f"{s['epochs']} epochs"
        return write_results(self, self.policy.architectures(self.net), reason, self.epoch, self.seconds,
                             files=("history.csv", *self.policy.files()),
                             at_bound=not self.policy.finished(self.net))
