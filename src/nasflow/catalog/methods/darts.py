"""DARTS (Liu, Simonyan, Yang 2019): the baseline.

Choices the paper leaves open, and where nasflow follows the authors' code instead:
docs/methods.md, "DARTS (Liu, Simonyan and Yang 2019), the baseline".
"""
import yaml

from nasflow.catalog.methods import register

register(
    "darts",
    policy="nasflow.search.policies.darts:Darts",
    describe=lambda s: f"{s['order']} order, prune once at the end",
    schema=yaml.safe_load("""
required: [order]
properties:
  order:
    enum: [first, second]
    description: first-order or unrolled second-order architecture gradient
"""),
)
