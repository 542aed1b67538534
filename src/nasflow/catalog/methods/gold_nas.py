"""GOLD-NAS (Bi et al. 2020) and appendix B.4's random-pruning baseline in its space.

Choices the paper leaves open, and where nasflow follows the authors' code instead:
docs/methods.md, "GOLD-NAS (Bi et al. 2020)".
"""
import yaml

from nasflow.catalog.methods import register

# The method's own keys, in its block and in the `imagenet_style:` block laid over it (appendix C).
GOLD_NAS_KEYS = yaml.safe_load("""
a_momentum: {type: number, minimum: 0, maximum: 1}
mu:
  type: number
  minimum: 0
  description: weight of the uniform FLOPs term (1 or 0 in the paper)
flops_min:
  type: number
  exclusiveMinimum: 0
  description: the search ends when the network's MACs (millions) fall to this
n0: {type: integer, minimum: 1}
xi_max: {type: number, exclusiveMinimum: 0, exclusiveMaximum: 1}
xi_min: {type: number, exclusiveMinimum: 0, exclusiveMaximum: 1}
c0: {type: number, exclusiveMinimum: 1}
lambda0: {type: number, exclusiveMinimum: 0}
val_fraction:
  type: number
  minimum: 0
  exclusiveMaximum: 1
  description: "held out of every class of the training images to measure the search (0: none; never the test set)"
patience:
  type: integer
  minimum: 0
  description: "Algorithm 1's t0: epochs without pruning before the architecture is recorded"
""")


def schema(common: dict) -> dict:
    return {
        "required": ["a_momentum", "mu", "flops_min", "n0", "xi_max", "xi_min", "c0", "lambda0", "patience", "val_fraction"],
        "properties": {**GOLD_NAS_KEYS, "imagenet_style": {
            "type": "object", "additionalProperties": False,
            "description": "laid over this block when the dataset is ImageNet-style (GOLD-NAS appendix C)",
            "properties": {**common, **GOLD_NAS_KEYS, "classes": {
                "type": ["integer", "null"], "minimum": 2,
                "description": "dataset imagenet: this many classes drawn with data.split_seed (null = all)"}}}},
    }


register(
    "gold-nas",
    policy="nasflow.search.policies.gold_nas:GoldNas",
    describe=lambda s: f"one level, FLOPs-regularised gradual pruning (mu={s['mu']}, n0={s['n0']}, to {s['flops_min']} M)",
    schema=schema,
    columns=("lambda", "n_pruned", "flops_M"),
    one_level=True,
    epochs_bound=True,  # Algorithm 1 stops at flops_min; more epochs let a search that has not go on
)

register(
    "gold-nas-random",
    policy="nasflow.search.policies.random_prune:RandomPrune",
    describe=lambda s: f"random pruning to {s['flops_max']} M, best of {s['candidates']} briefly trained",
    settings_from="gold-nas",  # GOLD-NAS's block under its own: the same space at the same size
    trains_supernet=False,
    schema=yaml.safe_load("""
required: [candidates, candidate_epochs, flops_max, max_draws]
properties:
  candidates:
    type: integer
    minimum: 1
    description: random architectures drawn and trained (24 in GOLD-NAS appendix B.4)
  candidate_epochs:
    type: integer
    minimum: 1
    description: epochs each candidate trains before its held-out error is measured (100 in the paper)
  flops_max:
    type: number
    exclusiveMinimum: 0
    description: operators are pruned at random until the MACs (millions) fall to this
  max_draws:
    type: integer
    minimum: 1
    description: draws (invalid ones included) before giving up on a candidate
"""),
)
