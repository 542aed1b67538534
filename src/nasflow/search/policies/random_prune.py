"""GOLD-NAS's random-search baseline (section 4.2's last paragraph, appendix B.4).

Candidates. Operators are pruned from the enlarged super-network (GOLD-NAS's space: every candidate on
every edge of every cell) one at a time, in a seeded random order, until the discretised MACs fit the
budget (`flops_max`, millions). A draw that leaves some node without any input is invalid: it is
discarded and a new draw starts from the full network (the paper discards such architectures). The MACs
come from the same analytic per-op tables as GOLD-NAS's regulariser, so a candidate's budget is the one
its evaluation network is counted at.

Selection. Each of the `candidates` architectures (24 in the paper) is trained from scratch for
`candidate_epochs` (100 in the paper) on one part of the training set and scored on the held-out part;
the lowest validation error is the search's result (the paper then retrains it for 600 epochs, which
the pipeline's training stage does). Training the candidates, not the super-network, is what makes
this a baseline for the search rather than for the pruning rule.

The run writes what a search writes (genotype.json, architectures.json, search.json, history.csv with a
row per candidate) plus every candidate's genotype under candidates/, and checkpoints after each
candidate: candidate i is drawn and trained from generators seeded by (seed, i), so a resumed run
yields the same candidates and scores as an uninterrupted one.

Choices the paper leaves open, and where nasflow follows the authors' code instead:
docs/methods.md, "GOLD-NAS (Bi et al. 2020)".
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from nasflow import io as nio
from nasflow import track
from nasflow.catalog.datasets import dataset_info
from nasflow.data.datasets import load
from nasflow.data.loader import Batches, epoch_generator, normalisation
from nasflow.errors import NasflowError
from nasflow.progress import Progress
from nasflow.runtime import load_checkpoint, prepare_run_dir
from nasflow.search.flops import fixed_macs, op_macs_table
from nasflow.search.policies.base import SearchPolicy
from nasflow.search.results import write_results
from nasflow.search.splits import search_augmentation, training_split
from nasflow.search.steps import evaluate
from nasflow.search.supernet import Supernet, edge_inputs
from nasflow.space.counting import count_network, evaluation_network
from nasflow.train.schedules import cosine

HISTORY_COLUMNS = ["candidate", "draws", "pruned", "alive_candidates", "flops_M", "params_M", "macs_M", "train_loss",
                   "train_error", "val_loss", "val_error", "seconds"]
CHECKPOINT_VERSION = 1


def node_has_input(alive: torch.Tensor, inputs: list[tuple[int, int]], node: int) -> bool:
    return any(bool(alive[e].any()) for e, (k, _) in enumerate(inputs) if k == node)


def random_prune(tables: dict[str, torch.Tensor], fixed: int, nodes: int, budget: float, generator: torch.Generator,
                 max_draws: int) -> tuple[dict[str, torch.Tensor], int, int]:
    """(alive masks, draws used, candidates pruned) of one valid architecture whose MACs fit `budget`.
    Pruning an op changes only its own node, so validity is checked at that node after every prune."""
    inputs = edge_inputs(nodes)
    names = list(tables)
    slots = [(name, e, s) for name in names for e, s in torch.nonzero(torch.ones_like(tables[name], dtype=torch.bool)).tolist()]
    for draw in range(1, max_draws + 1):
        alive = {name: torch.ones_like(t, dtype=torch.bool) for name, t in tables.items()}
        macs = fixed + sum(float(t.sum()) for t in tables.values())
        valid, pruned = True, 0
        for i in torch.randperm(len(slots), generator=generator).tolist():
            if macs <= budget:
                break
            name, e, s = slots[i]
            alive[name][e, s] = False
            macs -= float(tables[name][e, s])
            pruned += 1
            if not node_has_input(alive[name], inputs, inputs[e][0]):
                valid = False  # a node with no input: the paper discards the architecture
                break
        if valid and macs <= budget:
            return alive, draw, pruned
    raise NasflowError(f"search.gold-nas-random: no valid architecture within flops_max = {budget / 1e6:g} M MACs "
                       f"in max_draws = {max_draws} draws (raise flops_max or max_draws)")


def genotype_of(net: Supernet, alive: dict[str, torch.Tensor]):
    """Every alive candidate stays, as in GOLD-NAS's derivation."""
    inputs = edge_inputs(net.space.nodes)
    choice = {}
    for name, mask in alive.items():
        nodes = [[] for _ in range(net.space.nodes)]
        for e, s in torch.nonzero(mask).tolist():
            nodes[inputs[e][0]].append((e, s))
        choice[name] = nodes
    return net.genotype_from_choice(choice)


class RandomPruneRun:
    """Draws, trains and scores the candidates instead of the engine's loop (`SearchPolicy.runner`);
    `search` is the engine's SearchRun (settings, out, device, fingerprint)."""

    def __init__(self, search):
        self.params, self.seed, self.out, self.s = search.params, search.seed, search.out, search.s
        self.device, self.fingerprint, self.track_runs = search.device, search.fingerprint, search.track_runs
        self.inputs, self.method = search.inputs, search.method
        self.space_config = search.space_config

    @property
    def checkpoint_path(self):
        return self.out / "checkpoint.pt"

    # ---- data: a held-out part of the training set scores the candidates ---------------------------------
    def _data(self):
        s = self.s
        arrays = load(self.params, s["dataset"])
        labels = arrays.y_train
        mean, std = normalisation(s["dataset"], arrays.x_train)
        train, held = training_split(labels, s, self.params["data"], self.params["data"]["weights_fraction"])
        self.train_batches = Batches(arrays.x_train[train], labels[train], s["batch_size"], mean, std, True,
                                     self.device, drop_last=True, image_transform=search_augmentation(s))
        self.val_batches = Batches(arrays.x_train[held], labels[held], s["batch_size"], mean, std, False, self.device)
        if len(self.train_batches) == 0:
            raise NasflowError(f"search.gold-nas-random.batch_size {s['batch_size']} is larger than the "
                               f"{len(train)} training images")
        self.num_classes = arrays.num_classes

    # ---- one candidate ------------------------------------------------------------------------------------
    def _draw(self, net: Supernet, index: int):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        return random_prune(self.tables, self.fixed, net.space.nodes, self.s["flops_max"] * 1e6, g, self.s["max_draws"])

    def _train(self, genotype, index: int) -> dict:
        """`candidate_epochs` of SGD with a cosine learning rate, then the held-out error."""
        s = self.s
        torch.manual_seed(self.seed * 1_000_003 + index)
        model = evaluation_network(genotype, s["channels"], s["layers"], s["dataset"]).to(self.device)
        opt = torch.optim.SGD(model.parameters(), lr=s["w_lr"], momentum=s["w_momentum"], weight_decay=s["w_weight_decay"])
        epochs = s["candidate_epochs"]
        loss_sum = wrong = seen = 0
        for epoch in range(1, epochs + 1):
            lr = cosine(s["w_lr"], s["w_lr_min"], epoch - 1, epochs)
            for group in opt.param_groups:
                group["lr"] = lr
            model.train()
            loss_sum = wrong = seen = 0  # the last epoch's training figures are reported
            for x, y in self.train_batches.epoch(epoch_generator(self.seed * 1_000_003 + index, epoch)):
                logits = model(x)[0]
                loss = F.cross_entropy(logits, y)
                if not torch.isfinite(loss):
                    raise NasflowError(f"candidate {index}, epoch {epoch}: the loss became {float(loss)} "
                                       f"(lower search.gold-nas-random.w_lr = {s['w_lr']})")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), s["grad_clip"])
                opt.step()
                loss_sum += float(loss.detach()) * len(y)
                wrong += int((logits.argmax(1) != y).sum())
                seen += len(y)
        return {"train_loss": loss_sum / seen, "train_error": 100.0 * wrong / seen, **self._validate(model)}

    def _validate(self, model) -> dict:
        model.eval()
        return evaluate(lambda x: model(x)[0], self.val_batches)

    def _candidate(self, net: Supernet, index: int) -> tuple[dict, object]:
        started = time.perf_counter()
        alive, draws, pruned = self._draw(net, index)
        genotype = genotype_of(net, alive)
        genotype.name = f"gold-nas-random-s{self.seed}-c{index}"
        counts = count_network(genotype, self.s["channels"], self.s["layers"], self.s["dataset"])
        flops = self.fixed + sum(float(t[alive[k]].sum()) for k, t in self.tables.items())
        row = {"candidate": index, "draws": draws, "pruned": pruned, "alive_candidates": int(sum(int(m.sum()) for m in alive.values())),
               "flops_M": flops / 1e6, **counts, **self._train(genotype, index)}
        row["seconds"] = time.perf_counter() - started
        return row, genotype

    # ---- the run ------------------------------------------------------------------------------------------
    def run(self, resume: bool = False, replace_stale: bool = False) -> dict:
        prepare_run_dir(self.out, self.checkpoint_path, self.inputs, resume, replace_stale, self.params, "search")
        self._data()
        # Only the space's structure and pools are needed: the candidates are trained as evaluation networks.
        net = Supernet(self.space_config(self.num_classes))
        image_size = dataset_info(self.s["dataset"]).image_size
        self.tables, self.fixed = op_macs_table(net, image_size), fixed_macs(net, image_size)
        rows, seconds, run_id = [], 0.0, None
        if resume and self.checkpoint_path.exists():
            ckpt = load_checkpoint(self.checkpoint_path, "cpu", CHECKPOINT_VERSION, self.fingerprint)
            rows, seconds, run_id = ckpt["rows"], ckpt["seconds"], ckpt["run_id"]
        self.tracker = tracker = track.start_run(
            self.params, f"search-gold-nas-random-s{self.seed}",
            tags={"stage": "search", "method": "gold-nas-random", "seed": self.seed, "dataset": self.s["dataset"]},
            logged_params={"search": self.s, "seed": self.seed, "method": "gold-nas-random"},
            enabled=self.track_runs, resume_run_id=run_id)
        mode = self.params.get("runtime", {}).get("progress", "auto")
        progress = Progress(f"search gold-nas-random s{self.seed}", self.s["candidates"], mode)
        (self.out / "candidates").mkdir(parents=True, exist_ok=True)
        with track.finishing(tracker):
            for index in range(len(rows), self.s["candidates"]):
                row, genotype = self._candidate(net, index)
                nio.write_json(self.out / "candidates" / f"candidate-{index}.json", genotype.to_json())
                rows.append(row)
                seconds += row["seconds"]
                nio.write_csv(self.out / "history.csv", rows, HISTORY_COLUMNS)
                nio.save_torch(self.checkpoint_path, {"version": CHECKPOINT_VERSION, "fingerprint": self.fingerprint,
                                                      "rows": rows, "seconds": seconds, "run_id": tracker.run_id})
                tracker.log_metrics({k: v for k, v in row.items() if k != "candidate"}, step=index)
                progress.epoch_done(index + 1, macs=f"{row['macs_M']:.1f}M", val_error=f"{row['val_error']:.1f}%",
                                    seconds=f"{row['seconds']:.1f}")
            progress.close()
            return self._finish(rows, seconds, tracker)

    def _finish(self, rows: list[dict], seconds: float, tracker) -> dict:
        from nasflow.catalog.genotype import load_genotype

        best = min(rows, key=lambda r: (r["val_error"], r["val_loss"], r["candidate"]))
        genotype = load_genotype(self.out / "candidates" / f"candidate-{best['candidate']}.json")
        nio.write_csv(self.out / "history.csv", rows, HISTORY_COLUMNS)
        return write_results(self, [(self.s["candidate_epochs"], genotype)], RandomPrune.stop_reason,
                             self.s["candidate_epochs"], seconds, files=("history.csv",),
                             entry_extra={"candidate": best["candidate"]},
                             summary_extra={"candidates": len(rows), "best_candidate": best["candidate"],
                                            "best_val_error": best["val_error"],
                                            "draws": int(sum(r["draws"] for r in rows))})


class RandomPrune(SearchPolicy):
    """Declared in catalog/methods/gold_nas.py (it trains no supernet); the work is `RandomPruneRun`'s."""
    name = "gold-nas-random"
    stop_reason = "every candidate trained"
    runner = RandomPruneRun
