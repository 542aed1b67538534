"""ASAP (Noy et al. 2020): annealed softmax with threshold pruning, and Table 3's pruning baselines.

Choices the paper leaves open, and where nasflow follows the authors' code instead:
docs/methods.md, "ASAP (Noy et al. 2019)".
"""
import yaml

from nasflow.errors import NasflowError
from nasflow.catalog.methods import register


def describe(s: dict) -> str:
    if s["pruning"] == "threshold" and s["schedule"] == "pac":
        pac = s["pac"]
        return f"anneal and threshold by Theorem 2 (L={pac['grad_bound']}, delta={pac['delta']}, nu={pac['nu']})"
    if s["pruning"] == "threshold":
        return f"anneal {s['schedule']} (t0={s['t0']}, beta={s['beta']}) + threshold {s['threshold_factor']}/N"
    return f"{s['pruning']} pruning, Zhu-Gupta p={s['sparsity_power']}"


def settle(s: dict, method: str) -> dict:
    if s["prune_end_epoch"] <= s["prune_start_epoch"]:
        raise NasflowError(f"search.{method}.prune_end_epoch must come after search.{method}.prune_start_epoch")
    if s["schedule"] == "pac" and s["pac"]["nu"] * len(s["ops"]) > 1:
        raise NasflowError(f"search.{method}.pac.nu must be at most 1/N = {1 / len(s['ops']):.4f} "
                           "(Theorem 2's rho_t is positive only then)")
    if "none" in s["ops"]:
        raise NasflowError(f"search.{method}.ops: ASAP's space has no 'none' op (remove it from the list)")
    return s


register(
    "asap",
    policy="nasflow.search.policies.asap:Asap",
    describe=describe,
    settle=settle,
    columns=("temperature", "threshold", "alpha_updates"),
    schema=yaml.safe_load("""
required: [schedule, t0, beta, grace_temperature, threshold_factor, pac, pruning, sparsity_power,
           prune_start_epoch, prune_end_epoch]
properties:
  schedule:
    enum: [exponential, pac]
    description: "exponential: T = t0 * beta^epoch; pac: Theorem 2's schedule (eqs. 5-8), t = alpha updates so far"
  t0: {type: number, exclusiveMinimum: 0}
  beta: {type: number, exclusiveMinimum: 0, maximum: 1}
  grace_temperature:
    type: number
    exclusiveMinimum: 0
    description: weights alone while T >= this (Algorithm 1, line 5; exponential only, pac has no grace phase)
  threshold_factor:
    type: number
    exclusiveMinimum: 0
    exclusiveMaximum: 1
    description: prune an op whose weight falls below threshold_factor / N (exponential; pac has its own)
  pac:
    type: object
    additionalProperties: false
    required: [grad_bound, delta, nu]
    description: "Theorem 2: T_t = a_lr * L * rho_t * sqrt(8/t log(pi^2 N t^2 / (3 delta))), theta_t = nu e^-t"
    properties:
      grad_bound:
        type: number
        exclusiveMinimum: 0
        description: L, Theorem 2's bound on one alpha update in units of a_lr (asap.py says why 0.25)
      delta:
        type: number
        exclusiveMinimum: 0
        exclusiveMaximum: 1
        description: the chance Theorem 2 allows of pruning an edge's best op
      nu:
        type: number
        exclusiveMinimum: 0
        description: theta_t = nu e^-t; at most 1/N
  pruning:
    enum: [threshold, magnitude, accumulated_gradient]
    description: ASAP's threshold, or Table 3's baselines on the Zhu-Gupta sparsity schedule
  sparsity_power: {enum: [1, 3]}
  prune_start_epoch: {type: integer, minimum: 1}
  prune_end_epoch: {type: integer, minimum: 1}
"""),
)
