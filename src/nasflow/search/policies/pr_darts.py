"""PR-DARTS, prune-and-replace DARTS (Laube and Zell 2019, "Prune and Replace NAS"); not the
path-regularised DARTS that shares the acronym.

Cycles (3.1, 3.2.2, Table 1). The search is a list of short DARTS searches (`cycles` in params.yaml:
epochs, grace epochs, morphisms, candidates). Each edge of each cell type has its own candidate pool,
starting from max and avg pool 3x3, identity (factorized reduce at stride 2) and one single-layer
separable 3x3 conv (4.1). A cycle begins with grace epochs that train the weights only (so that ops that
are harder to learn, and children that are not true morphisms, are not judged before they have
trained), then trains alpha and the weights bi-level as DARTS, first order. At its end, on every edge:

1. prune: keep the `candidates - morphisms` ops of largest softmax(alpha), with at least one conv
   among them until the last cycle, so that a parent can always be morphed;
2. replace: draw `morphisms` parents by softmax over the survivors' alpha, morph each with a morphism
   drawn uniformly from those its space allows (`space/morphisms.py`, Table 2); a child that is or
   was in this edge's pool is redrawn, and accepted again only when `max_draws` draws found nothing new;
3. children inherit their parents' weights (every cell of the group morphs its own module; a layer the
   parent lacks starts as an identity, as the authors' operations.py does), kept ops keep theirs, and
   alpha is reset to zeros. With `copy_from_parent: every_cycle` (the authors' train_search.py, whose
   record of each child's parent is never cleared) a kept child whose parent is kept too is copied from
   the parent again at the start of every later cycle, in the order the ops entered the pool (so a
   grandchild copies its re-copied parent); `once` (3.2.2's text) copies a child only when it is made.

Schedule (4.1). The weights' learning rate is annealed by cosine from w_lr to w_lr_min (0.01) within
each cycle and restarts at w_lr with the next; every cycle starts a fresh SGD, no momentum carried over
(the authors' train_search.py builds one per cycle; the paper says nothing of it). Alpha: Adam, 6e-4,
betas (0.5, 0.999), wd 1e-3, a fresh one per cycle as well, its gradient clipped at norm `a_grad_clip`
(5, the authors' train_search.py; the paper names no clipping).

Cell output (3.1). The paper's text says the search's cells output the mean of their nodes; the authors'
model_search.py concatenates them, and the published cells were found with that supernet. `cell_output`
follows the code (concat); `mean` follows the text.

Batch size (3.3). Reset to bmin at every cycle; on CUDA, every `check_every` steps, the peak memory of
the last steps gives the memory per image (above what stays allocated between steps), and the batch
grows towards the largest bmin + n * bmult <= bmax expected to stay under `threshold` of the memory
budget (`memory_budget_gib`, the paper's 11 GiB GTX 1080 Ti, or the device's memory where that is
less): at most to twice its size per check, and it never shrinks within a cycle (the authors'
train_search.py). On the CPU it stays at bmin.

Statistics (4.2). Per cycle: every pool (`pools.json`), the operation similarity as the authors'
`op_similarity` computes it (two ops of different types (identity, pool, conv) are 0 alike; otherwise
(1 + k) / (1 + n) for k of their n configuration parameters equal (pool type and kernel; expansions,
kernel and dilation), expansions partly equal; averaged over every ordered pair of an edge's pool, each
op with itself included, then over edges), and the ratios of op types, in history.csv and MLflow. A cycle's last
val_error is measured before its prune and replace (the authors' train_search.py).

Derivation. After the last cycle every edge holds one op; each node keeps the two incoming edges whose
op had the largest weight on its edge before that last pruning (the DARTS rule), in the general genotype
form, so cells may hold ops no fixed list names (7x7 kernels, single-layer or expanded convs).

Choices the paper leaves open, and where nasflow follows the authors' code instead:
docs/methods.md, "PR-DARTS (Laube and Zell 2019)".
"""
from __future__ import annotations

import itertools
import math

import torch

from nasflow.errors import NasflowError
from nasflow.search.policies.base import SearchPolicy, masked_softmax
from nasflow.search.supernet import Supernet, top_k_per_node
from nasflow.catalog.ops import POOLS, Limits, OpSpec
from nasflow.space.morphisms import available, child_spec, morph
from nasflow.train.schedules import cosine

OP_TYPES = ("conv", "pool", "skip")


# ---- statistics (section 4.2) ------------------------------------------------------------------------

def op_type(spec: OpSpec) -> str:
    if spec.name in POOLS:
        return "pool"
    if spec.is_identity:
        return "skip"
    return "conv" if spec.parametric else spec.name


def _parameters(spec: OpSpec) -> tuple:
    """The configuration parameters 4.2 compares: a pool's type and kernel size; a conv's expansions,
    kernel size and dilation; an identity has none."""
    kind = op_type(spec)
    if kind == "pool":
        return POOLS[spec.name], int(spec.name.rsplit("x", 1)[1])
    if kind == "conv":
        return spec.c_mul, spec.k, spec.dil
    return ()


def _expansion_likeness(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """Expansions are partly alike (the authors' `op_similarity`): of n = 1 + the shorter length, one
    n-th for equal lengths and one n-th for every equal multiple among the leading positions."""
    n = min(len(a), len(b)) + 1
    return ((len(a) == len(b)) + sum(x == y for x, y in zip(a, b))) / n


def similarity(a: OpSpec, b: OpSpec) -> float:
    """4.2: 0 for different types (identity, pool, conv); else (1 + k) / (1 + n) for k of the n
    configuration parameters equal, the expansions counting partly (the authors' utils.py)."""
    if op_type(a) != op_type(b):
        return 0.0
    alike = [_expansion_likeness(x, y) if isinstance(x, tuple) else float(x == y)
             for x, y in zip(_parameters(a), _parameters(b))]
    return (1 + sum(alike)) / (1 + len(alike))


def pool_similarity(pool: list[OpSpec]) -> float:
    """The mean over every ordered pair of the pool, each op with itself included (similarity 1): the
    authors' `op_similarity`, so a pool of one op is 1 and the initial pool 1/3. NaN for no op."""
    m = len(pool)
    if not m:
        return float("nan")
    pairs = sum(similarity(a, b) for a, b in itertools.combinations(pool, 2))
    return (m + 2 * pairs) / (m * m)


def pool_stats(pools: dict[str, list[list[OpSpec]]]) -> dict:
    """history.csv's per-cycle columns: similarity per cell type, op-type ratios over both, pool sizes."""
    out = {}
    for name, edges in pools.items():
        values = [v for v in map(pool_similarity, edges) if not math.isnan(v)]
        out[f"similarity_{name}"] = sum(values) / len(values) if values else float("nan")
    ops = [op for edges in pools.values() for pool in edges for op in pool]
    for kind in OP_TYPES:
        out[f"ratio_{kind}"] = sum(op_type(op) == kind for op in ops) / len(ops)
    out["pool_size"] = len(ops) / sum(len(edges) for edges in pools.values())
    return out


# ---- batch size (section 3.3) --------------------------------------------------------------------------

GIB = 2 ** 30


def read_memory(device) -> tuple[float, float, float]:
    """(resident, peak, device total) in bytes on a CUDA device: what stays allocated between steps, the
    peak since the last reset, and the device's whole memory."""
    return (float(torch.cuda.memory_allocated(device)), float(torch.cuda.max_memory_allocated(device)),
            float(torch.cuda.mem_get_info(device)[1]))


def reset_peak_memory(device) -> None:
    """Start a new peak (the next `read_memory` sees the steps since)."""
    torch.cuda.reset_peak_memory_stats(device)


def memory_limit(device_total: float, s: dict) -> float:
    """The bytes the batch may plan for: `memory_budget_gib` (the paper's card), never more than the
    device has; `threshold` of it is what the batch may fill."""
    return min(s["memory_budget_gib"] * GIB, device_total)


def fitting_batch_size(current: int, resident: float, peak: float, total: float, s: dict) -> int:
    """The largest bmin + n * bmult (at most bmax) whose memory, linear in the batch size from what one
    step at `current` took above the `resident` bytes, stays under `threshold` of `total` (the memory
    limit: `memory_limit`)."""
    per_image = max(peak - resident, 1.0) / current
    room = s["threshold"] * total - resident
    n = math.floor((room / per_image - s["bmin"]) / s["bmult"]) if room > 0 else 0
    return int(min(max(s["bmin"] + max(n, 0) * s["bmult"], s["bmin"]), s["bmax"]))


def grown_batch_size(current: int, fitting: int, s: dict) -> int:
    """The batch after a check: `fitting` where it is larger than `current`, but at most the largest
    bmin + n * bmult within twice `current` (3.3 "we try to increase the batch size"; the authors'
    train_search.py grows it to at most twice its size and never lowers it). Within a cycle the supernet
    does not change, so a lower estimate is noise in the measured peak, not a reason to shrink."""
    doubled = s["bmin"] + (2 * current - s["bmin"]) // s["bmult"] * s["bmult"]
    return max(current, min(fitting, doubled))


# ---- the policy ------------------------------------------------------------------------------------------

class PrDarts(SearchPolicy):
    name = "pr-darts"
    alpha_first = True
    stop_reason = "last cycle"
    validate_before_end_epoch = True  # a cycle's last val_error is of the supernet it trained (train_search.py)

    def __init__(self, settings: dict, net: Supernet):
        super().__init__(settings, net)
        self.cycles = settings["cycles"]
        self.limits = Limits(**settings["limits_by_name"][settings["limits"]])
        self.ends = list(itertools.accumulate(c["epochs"] for c in self.cycles))
        self.seed = torch.initial_seed()  # the engine seeds torch with the run's seed before building
        with torch.no_grad():  # every cycle, the first included, starts with equal weights
            for g in net.groups.values():
                g.alpha.zero_()
        self.seen = {self._key(name, e): [op.label() for op in pool]
                     for name, g in net.groups.items() for e, pool in enumerate(g.pools)}
        self.log: list[dict] = []        # one entry per finished cycle, for pools.json
        self.final: dict | None = None   # per group, each edge's op weight before the last pruning
        self.batch = settings["bmin"]
        self.current = {name: [[op.to_json() for op in pool] for pool in g.pools] for name, g in net.groups.items()}
        self.stats = pool_stats(self._pools(net))
        self.changes = self._no_changes()
        # per edge, each child's parent and morphism: {child label: [parent label, morphism]}, kept for
        # good (a child made again overwrites its entry), as the authors' `morphed_from`
        self.parents: dict[str, dict[str, list[str]]] = {}
        self.begin_epoch(1)

    @staticmethod
    def _no_changes() -> dict:
        return {"n_pruned": 0, "n_morphed": 0, "n_exact": 0, "n_recopied": 0}

    @staticmethod
    def _key(group: str, edge: int) -> str:
        return f"{group}/{edge}"

    @staticmethod
    def _pools(net: Supernet) -> dict[str, list[list[OpSpec]]]:
        return {name: [list(p) for p in g.pools] for name, g in net.groups.items()}

    # ---- schedule ----------------------------------------------------------------------------------------
    def cycle_of(self, epoch: int) -> tuple[int, int]:
        """(cycle, epoch within it), both from 1."""
        for i, end in enumerate(self.ends):
            if epoch <= end:
                return i + 1, epoch - (end - self.cycles[i]["epochs"])
        raise NasflowError(f"epoch {epoch} is past the last cycle (epoch {self.ends[-1]})")

    def begin_epoch(self, epoch: int) -> None:
        super().begin_epoch(epoch)
        self.cycle, self.cycle_epoch = self.cycle_of(epoch)
        self.stage = self.cycles[self.cycle - 1]

    def updates_alpha(self) -> bool:
        return self.cycle_epoch > self.stage["grace"]

    def learning_rate(self, epoch: int) -> float:
        """Cosine from w_lr to the floor w_lr_min within each cycle; warm restart at the next."""
        cycle, at = self.cycle_of(epoch)
        length = self.cycles[cycle - 1]["epochs"]
        s = self.s
        return cosine(s["w_lr"], s["w_lr_min"], at - 1, length)

    def batch_size(self, step: int, device) -> int:
        s = self.s
        if step == 1 and self.cycle_epoch == 1:
            self.batch = s["bmin"]
            self._reset_peak(device)
        elif device.type == "cuda" and step % s["check_every"] == 1 and step > 1:
            # Between steps only what persists (weights, optimizer state, gradients) is allocated; the
            # peak of the last steps adds one step's activations at the current batch size.
            resident, peak, device_total = read_memory(device)
            total = memory_limit(device_total, s)
            self.batch = grown_batch_size(self.batch, fitting_batch_size(self.batch, resident, peak, total, s), s)
            self._reset_peak(device)
        return self.batch

    @staticmethod
    def _reset_peak(device) -> None:
        if device.type == "cuda":
            reset_peak_memory(device)

    # ---- optimizers ----------------------------------------------------------------------------------------
    def rebuild_weight_optimizer(self, old, params):
        """A fresh optimizer, no momentum carried over: the authors' train_search.py builds a new SGD for
        every cycle, whose pools and alpha are new too."""
        return type(old)(params, **{k: v for k, v in old.param_groups[0].items() if k != "params"})

    def arch_gradients(self, net: Supernet, train_batch, val_batch, w_opt) -> float:
        """First order, as DARTS; the gradient of all alphas together clipped at `a_grad_clip` before
        Adam's step, as the authors' train_search.py does (there at the weights' clip norm, 5)."""
        loss = super().arch_gradients(net, train_batch, val_batch, w_opt)
        torch.nn.utils.clip_grad_norm_(self.arch_parameters(net), self.s["a_grad_clip"])
        return loss

    # ---- prune and replace -------------------------------------------------------------------------------
    def end_epoch(self, net: Supernet) -> bool:
        self.stats = pool_stats(self._pools(net))  # of the pools this epoch trained
        self.changes = self._no_changes()
        if self.cycle_epoch < self.stage["epochs"]:
            return False
        self._prune_and_replace(net)
        return True

    def _survivors(self, pool: list[OpSpec], weights: torch.Tensor, keep: int, last: bool) -> list[int]:
        order = sorted(range(len(pool)), key=lambda s: (-float(weights[s]), s))
        kept = order[:keep]
        if not last and not any(pool[s].parametric for s in kept):
            convs = [s for s in order if pool[s].parametric]
            if convs:  # a conv stays until the last cycle, so that there is always a parent to morph
                kept[-1] = convs[0]
        return sorted(kept)

    def _draw_child(self, pool: list[OpSpec], kept: list[int], weights: torch.Tensor, taken: set[str],
                    seen: set[str], gen: torch.Generator):
        """(parent slot, morphism, child spec) or None. Only parents with a morphism left in the space are
        drawn: redrawing until one is found, as the paper does, is the same distribution."""
        parents = [s for s in kept if available(pool[s], self.limits)]
        if not parents:
            return None
        p = torch.stack([weights[s] for s in parents]).double().clamp_min(1e-12)
        fallback = None
        for _ in range(self.s["max_draws"]):
            slot = parents[int(torch.multinomial(p, 1, generator=gen))]
            kinds = available(pool[slot], self.limits)
            kind = kinds[int(torch.randint(len(kinds), (1,), generator=gen))]
            spec = child_spec(kind, pool[slot])
            if spec.label() in taken:
                continue
            if spec.label() not in seen:
                return slot, kind, spec
            fallback = fallback or (slot, kind, spec)  # was in this pool once, but not now
        return fallback

    def _prune_and_replace(self, net: Supernet) -> None:
        last = self.cycle == len(self.cycles)
        stage = self.stage
        keep = stage["candidates"] - stage["morphisms"]
        gen = torch.Generator().manual_seed((self.seed * 1000 + self.cycle) % 2 ** 63)
        # The weights are read for all edges before any pool changes.
        weights = {name: masked_softmax(g.alpha.detach(), g.alive).cpu() for name, g in net.groups.items()}
        entry = {"cycle": self.cycle, "epochs": [self.ends[self.cycle - 1] - stage["epochs"] + 1, self.ends[self.cycle - 1]],
                 "pools": {name: [[op.to_json() for op in pool] for pool in g.pools] for name, g in net.groups.items()},
                 "weights": {name: w.tolist() for name, w in weights.items()}, **self.stats, "morphs": [],
                 "recopied": []}
        if last:
            self.final = {name: [float(w[e].max()) for e in range(len(net.groups[name].pools))]
                          for name, w in weights.items()}
        for name, g in net.groups.items():
            for edge, pool in enumerate(list(g.pools)):
                self._replace_on_edge(net, name, edge, pool, weights[name][edge], keep, stage["morphisms"], last,
                                      gen, entry)
        with torch.no_grad():  # 3.2: every cycle starts with a fresh, uniform alpha on every edge
            for g in net.groups.values():
                g.alpha.zero_()
        self.log.append(entry)
        self.current = {name: [[op.to_json() for op in pool] for pool in g.pools] for name, g in net.groups.items()}

    def _recopy(self, name, edge, new_pool, modules, recopied) -> None:
        """`copy_from_parent: every_cycle`: each kept child whose recorded parent is kept too takes the
        parent's weights again, through the same morphism, in pool order (a parent before its child)."""
        parents = self.parents.get(self._key(name, edge), {})
        index = {op.label(): i for i, op in enumerate(new_pool)}
        for i, spec in enumerate(new_pool):
            parent, kind = parents.get(spec.label(), (None, None))
            if parent not in index or index[parent] >= i:
                continue
            p = index[parent]
            modules[i] = [morph(kind, new_pool[p], module).module for module in modules[p]]
            self.changes["n_recopied"] += 1
            recopied.append({"group": name, "edge": edge, "parent": new_pool[p].to_json(), "morphism": kind,
                             "child": spec.to_json()})

    def _replace_on_edge(self, net, name, edge, pool, weights, keep, n_morphs, last, gen, entry) -> None:
        kept = self._survivors(pool, weights, keep, last)
        cells = net.cells_of(name)
        new_pool = [pool[s] for s in kept]
        modules = {i: [cell.candidate_set(edge).module(s) for cell in cells] for i, s in enumerate(kept)}
        if self.s["copy_from_parent"] == "every_cycle" and not last:  # no cycle follows the last
            self._recopy(name, edge, new_pool, modules, entry["recopied"])
        parents = self.parents.setdefault(self._key(name, edge), {})
        seen = set(self.seen[self._key(name, edge)])
        for _ in range(n_morphs):
            drawn = self._draw_child(pool, kept, weights, {op.label() for op in new_pool}, seen, gen)
            if drawn is None:
                break
            slot, kind, spec = drawn
            children = [morph(kind, pool[slot], module) for module in modules[kept.index(slot)]]
            modules[len(new_pool)] = [c.module for c in children]
            new_pool.append(spec)
            seen.add(spec.label())
            parents[spec.label()] = [pool[slot].label(), kind]
            exact = children[0].exact
            self.changes["n_morphed"] += 1
            self.changes["n_exact"] += int(exact)
            entry["morphs"].append({"group": name, "edge": edge, "parent": pool[slot].to_json(), "morphism": kind,
                                    "child": spec.to_json(), "exact": exact})
        self.changes["n_pruned"] += len(pool) - len(kept)
        self.seen[self._key(name, edge)] = sorted(seen)
        net.set_pool(name, edge, new_pool, modules)

    # ---- records -----------------------------------------------------------------------------------------
    def record(self) -> dict:
        return {"phase": "search" if self.updates_alpha() else "grace", "cycle": self.cycle,
                "cycle_epoch": self.cycle_epoch, "batch_size": self.batch, **self.stats, **self.changes}

    def files(self) -> dict[str, object]:
        return {"pools.json": {"space": self.s["limits"], "limits": self.s["limits_by_name"][self.s["limits"]],
                               "cycles": self.log, "current": self.current}}

    def finished(self, net: Supernet) -> bool:
        return self.final is not None

    def derive(self, net: Supernet):
        """Top-2 incoming edges per node; after the last cycle by the weight each edge's op had before the
        last pruning (alone on its edge, its weight now says nothing)."""
        choice = {}
        for name, g in net.groups.items():
            w = masked_softmax(g.alpha.detach(), g.alive)
            if self.final is not None:
                w = torch.zeros_like(w)
                w[:, 0] = torch.tensor(self.final[name], device=w.device)
            choice[name] = top_k_per_node(w, g.alive, net.space.nodes, k=2)
        return net.genotype_from_choice(choice, cell_output=self.s["derived_cell_output"])

    # ---- checkpoints -------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"seen": self.seen, "log": self.log, "final": self.final, "batch": self.batch,
                "stats": self.stats, "changes": self.changes, "current": self.current, "parents": self.parents}

    def load_state_dict(self, state: dict) -> None:
        self.seen, self.log, self.final = state["seen"], state["log"], state["final"]
        self.batch, self.stats, self.changes = state["batch"], state["stats"], state["changes"]
        self.current, self.parents = state["current"], state["parents"]
