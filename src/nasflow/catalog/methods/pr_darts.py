"""PR-DARTS (prune and replace, Laube and Zell 2019).

Choices the paper leaves open, and where nasflow follows the authors' code instead:
docs/methods.md, "PR-DARTS (Laube and Zell 2019)".
"""
import yaml

from nasflow.errors import NasflowError
from nasflow.catalog.methods import register
from nasflow.catalog.ops import Limits, parse_op


def settle(settings: dict, method: str) -> dict:
    """Table 2's limits and Table 1's cycles are consistent; `epochs` and `batch_size` follow from them."""
    s, where = dict(settings), f"search.{method}"
    if s["limits"] not in s["limits_by_name"]:
        raise NasflowError(f"{where}.limits: {s['limits']!r} is not one of {where}.limits_by_name ({', '.join(s['limits_by_name'])})")
    for name, lim in s["limits_by_name"].items():
        for low, high in (("k_min", "k_max"), ("dil_min", "dil_max")):
            if lim[low] > lim[high]:
                raise NasflowError(f"{where}.limits_by_name.{name}.{low} ({lim[low]}) exceeds {high} ({lim[high]})")
        for key in ("k_min", "k_max"):
            if lim[key] % 2 == 0:
                raise NasflowError(f"{where}.limits_by_name.{name}.{key} must be odd, got {lim[key]}")
    cycles = s["cycles"]
    for i, c in enumerate(cycles):
        if c["grace"] >= c["epochs"]:
            raise NasflowError(f"{where}.cycles.{i}.grace ({c['grace']}) must be below its epochs "
                               f"({c['epochs']}): alpha must train before the pruning")
        if c["morphisms"] >= c["candidates"]:
            raise NasflowError(f"{where}.cycles.{i}.morphisms ({c['morphisms']}) must be below its "
                               f"candidates ({c['candidates']}): at least one op survives the pruning")
    if cycles[-1]["candidates"] != 1 or cycles[-1]["morphisms"] != 0:
        raise NasflowError(f"{where}.cycles.{len(cycles) - 1}: the last cycle must end with candidates 1 "
                           f"and morphisms 0 (one op per edge)")
    if s["bmin"] > s["bmax"]:
        raise NasflowError(f"{where}.bmin ({s['bmin']}) exceeds bmax ({s['bmax']})")
    if s["feature_sharing"]:
        raise NasflowError(f"{where}.feature_sharing: per-edge pools need each edge's own modules (false)")
    limits = Limits(**s["limits_by_name"][s["limits"]])
    convs = [parse_op(op) for op in s["ops"] if parse_op(op).parametric]
    if not convs or not all(limits.allows(c) for c in convs):
        raise NasflowError(f"{where}.ops: the initial pool needs a parametric conv within the "
                           f"{s['limits']} limits, got {s['ops']}")
    # Derived: the cycles fix the length of the search, and the batch starts at bmin.
    s["epochs"] = sum(c["epochs"] for c in cycles)
    s["batch_size"] = s["bmin"]
    return s


register(
    "pr-darts",
    policy="nasflow.search.policies.pr_darts:PrDarts",
    describe=lambda s: (f"{len(s['cycles'])} cycles of prune and replace, {s['limits']} limits, "
                        f"{sum(c['morphisms'] for c in s['cycles'])} morphism rounds"),
    settle=settle,
    columns=("cycle", "cycle_epoch", "batch_size", "pool_size", "n_pruned", "n_morphed", "n_exact", "n_recopied",
             "similarity_normal", "similarity_reduce", "ratio_conv", "ratio_pool", "ratio_skip"),
    schema=yaml.safe_load("""
required: [derived_cell_output, a_grad_clip, limits, limits_by_name, cycles, max_draws, copy_from_parent, bmin, bmult,
           bmax, threshold, memory_budget_gib, check_every]
properties:
  ops:
    type: array
    minItems: 1
    items: {type: [string, object]}
    description: "the first pool of every edge: names, or a parametric {op: conv, k, dil, c_mul}"
  derived_cell_output:
    enum: [concat, mean, conv1x1]
    description: the cell output written into the derived genotype (the search's own is cell_output)
  a_grad_clip:
    type: number
    exclusiveMinimum: 0
    description: norm at which the gradient of all alphas together is clipped before Adam's step (the authors' code)
  limits:
    type: string
    description: "the morphism limits in force (Table 2's search space: darts-like, depth-restricted, unrestricted): a name under limits_by_name"
  limits_by_name:
    type: object
    minProperties: 1
    additionalProperties:
      type: object
      additionalProperties: false
      required: [k_min, k_max, dil_min, dil_max, max_depth, max_width]
      properties:
        k_min: {type: integer, minimum: 1}
        k_max: {type: integer, minimum: 1, maximum: 15}
        dil_min: {type: integer, minimum: 1}
        dil_max: {type: integer, minimum: 1, maximum: 8}
        max_depth:
          type: [integer, "null"]
          minimum: 0
          description: most expansion layers (len(c_mul)); null = no limit
        max_width:
          type: [integer, "null"]
          minimum: 1
          description: largest expansion multiple; null = no limit
  cycles:
    type: array
    minItems: 1
    description: Table 1, one entry per cycle; search.epochs becomes the sum of their epochs
    items:
      type: object
      additionalProperties: false
      required: [epochs, grace, morphisms, candidates]
      properties:
        epochs: {type: integer, minimum: 1}
        grace:
          type: integer
          minimum: 0
          description: first epochs of the cycle that train the weights only
        morphisms:
          type: integer
          minimum: 0
          description: children added to every edge at the cycle's end
        candidates:
          type: integer
          minimum: 1
          description: ops on every edge after the cycle's pruning and replacing
  max_draws:
    type: integer
    minimum: 1
    description: parent draws per child before a child seen before on the edge is accepted again
  copy_from_parent:
    enum: [every_cycle, once]
    description: "every_cycle: a kept child whose parent is kept too copies the parent's weights again at the start of every cycle (the authors' train_search.py); once: only when it is made (3.2.2's text)"
  bmin: {type: integer, minimum: 1}
  bmult: {type: integer, minimum: 1}
  bmax: {type: integer, minimum: 1}
  threshold:
    type: number
    exclusiveMinimum: 0
    maximum: 1
    description: share of the memory budget (memory_budget_gib, or the device's memory where less) the batch size may fill
  memory_budget_gib:
    type: number
    exclusiveMinimum: 0
    description: "the accelerator memory (GiB) the batch-size controller plans for; the device's own where it has less"
  check_every:
    type: integer
    minimum: 1
    description: steps between batch-size checks (CUDA only; the CPU stays at bmin)
"""),
)
