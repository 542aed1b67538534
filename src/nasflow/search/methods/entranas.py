"""EnTranNAS and EnTranNAS-DST (Yang et al.): Engine-cells and Transit-cells, learned topology."""
import yaml

from nasflow.errors import NasflowError
from nasflow.search.registry import register
from nasflow.space.opspec import DARTS_OPS, ENTRANAS_EXTRA_OPS


def space_ops(space: str, with_none: bool) -> list[str]:
    """Table 8: the standard space (8 ops with `none`) or the extended one (13 with `none`)."""
    ops = list(DARTS_OPS) + (list(ENTRANAS_EXTRA_OPS) if space == "extended" else [])
    return ops if with_none else [o for o in ops if o != "none"]


def settle(settings: dict, method: str) -> dict:
    s = dict(settings)
    if s["layout"] != "shared":
        raise NasflowError(f"search.{method}.layout must be 'shared': the Engine-cells train the alphas that "
                           "the Transit-cells of the same type run")
    if method == "entranas-dst" and s["space"] == "ops" and "none" in s["ops"]:
        raise NasflowError(f"search.{method}.ops: EnTranNAS-DST learns the topology itself and has no 'none' "
                           "op (remove it from the list)")
    if s["space"] != "ops":
        s["ops"] = space_ops(s["space"], with_none=method == "entranas")
    if not [o for o in s["ops"] if o != "none"]:
        raise NasflowError(f"search.{method}.ops: nothing to derive besides 'none'")
    return s


def describe(s: dict, learned: bool) -> str:
    topology = f"learned topology, lambda={s['lambda']}" if learned else "top-2 inputs per node"
    return (f"engine cells {s['engine_cells']}, transit cells run the cell derived every step, {topology}, "
            f"tau {s['temperature0']} x {s['temperature_decay']}/epoch")


ENTRANAS_SCHEMA = yaml.safe_load("""
required: [space, engine_cells, temperature0, temperature_decay]
properties:
  space:
    enum: [standard, extended, ops]
    description: "Table 8's standard or extended candidate set (none dropped for DST); ops: the ops list"
  engine_cells:
    enum: [first, last, half, all]
    description: cells holding the whole DAG, per cell type (Table 1); the others run the derived cell
  temperature0:
    type: number
    exclusiveMinimum: 0
    description: eq. 5's softmax temperature in the first epoch
  temperature_decay:
    type: number
    exclusiveMinimum: 0
    maximum: 1
    description: the temperature is multiplied by this every epoch (0.923)
""")

register(
    "entranas",
    policy="nasflow.search.entranas:EnTranNAS",
    describe=lambda s: describe(s, learned=False),
    settle=settle,
    columns=("temperature", "derived_edges_normal", "derived_edges_reduce"),
    schema=ENTRANAS_SCHEMA,
)

register(
    "entranas-dst",
    policy="nasflow.search.entranas:EnTranNASDST",
    describe=lambda s: describe(s, learned=True),
    settle=settle,
    columns=("temperature", "threshold", "lambda", "derived_edges_normal", "derived_edges_reduce"),
    schema={"required": [*ENTRANAS_SCHEMA["required"], "lambda", "beta_init"],
            "properties": {**ENTRANAS_SCHEMA["properties"], **yaml.safe_load("""
lambda:
  type: number
  minimum: 0
  description: "eq. 11: weight of mean(-log t_j); larger cuts more connections"
beta_init:
  type: number
  description: initial beta_j of the thresholds t_j = sigmoid(beta_j)
""")}},
)
