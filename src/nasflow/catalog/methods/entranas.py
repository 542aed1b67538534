"""EnTranNAS and EnTranNAS-DST (Yang et al.): Engine-cells and Transit-cells, learned topology.

Choices the paper leaves open, and where nasflow follows the authors' code instead:
docs/methods.md, "EnTranNAS and EnTranNAS-DST (Yang et al. 2021)".
"""
import yaml

from nasflow.errors import NasflowError
from nasflow.catalog.methods import register
from nasflow.catalog.ops import DARTS_OPS, ENTRANAS_EXTRA_OPS


def op_set_ops(op_set: str, with_none: bool) -> list[str]:
    """Table 8: the standard space (8 ops with `none`) or the extended one (13 with `none`)."""
    ops = list(DARTS_OPS) + (list(ENTRANAS_EXTRA_OPS) if op_set == "extended" else [])
    return ops if with_none else [o for o in ops if o != "none"]


def settle(settings: dict, method: str) -> dict:
    s = dict(settings)
    if s["layout"] != "shared":
        raise NasflowError(f"search.{method}.layout must be 'shared': the Engine-cells train the alphas that "
                           "the Transit-cells of the same type run")
    if method == "entranas-dst" and s["op_set"] == "ops" and "none" in s["ops"]:
        raise NasflowError(f"search.{method}.ops: EnTranNAS-DST learns the topology itself and has no 'none' "
                           "op (remove it from the list)")
    if s["op_set"] != "ops":
        s["ops"] = op_set_ops(s["op_set"], with_none=method == "entranas")
    if not [o for o in s["ops"] if o != "none"]:
        raise NasflowError(f"search.{method}.ops: nothing to derive besides 'none'")
    parts = [s.get("weights_fraction"), s.get("arch_fraction")]
    if None not in parts and sum(parts) > 1:
        raise NasflowError(f"search.{method}.imagenet_style: weights_fraction ({parts[0]}) and arch_fraction "
                           f"({parts[1]}) are disjoint parts of every class and add up to more than 1")
    return s


def describe(s: dict, learned: bool) -> str:
    topology = f"learned topology, lambda={s['lambda']}" if learned else "top-2 inputs per node"
    return (f"engine cells {s['engine_cells']}, transit cells run the cell derived every step, {topology}, "
            f"tau {s['temperature0']} x {s['temperature_decay']}/epoch")


ENTRANAS_SCHEMA = yaml.safe_load("""
required: [op_set, engine_cells, temperature0, temperature_decay]
properties:
  op_set:
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

DST_SCHEMA = {"required": [*ENTRANAS_SCHEMA["required"], "lambda", "beta_init"],
              "properties": {**ENTRANAS_SCHEMA["properties"], **yaml.safe_load("""
lambda:
  type: number
  minimum: 0
  description: "eq. 11: weight of mean(-log t_j); larger cuts more connections"
beta_init:
  type: number
  description: initial beta_j of the thresholds t_j = sigmoid(beta_j)
""")}}

# The bi-level split of the `imagenet_style:` block (appendix A.1: 10 % of the training images for the weights,
# another 10 % for alpha, from every class); read by the engine on ImageNet-style datasets only.
SPLIT_KEYS = yaml.safe_load("""
weights_fraction:
  type: number
  exclusiveMinimum: 0
  exclusiveMaximum: 1
  description: "share of every class's training images that trains the weights (in place of data.weights_fraction)"
arch_fraction:
  type: [number, "null"]
  exclusiveMinimum: 0
  exclusiveMaximum: 1
  description: "share of every class, disjoint from the weights' images, that trains alpha (null: the rest)"
""")


def with_imagenet_style(declared: dict):
    """The method's block schema with its `imagenet_style:` sub-block: the common and the method's keys and
    the bi-level split's, laid over the block on ImageNet-style datasets (imagenet, imagenette64)."""
    def schema(common: dict) -> dict:
        return {"required": declared["required"], "properties": {**declared["properties"], "imagenet_style": {
            "type": "object", "additionalProperties": False,
            "description": "laid over this block when the dataset is ImageNet-style (EnTranNAS 4.3, appendix A.1)",
            "properties": {**common, **declared["properties"], **SPLIT_KEYS}}}}
    return schema


register(
    "entranas",
    policy="nasflow.search.policies.entranas:EnTranNAS",
    describe=lambda s: describe(s, learned=False),
    settle=settle,
    columns=("temperature", "derived_edges_normal", "derived_edges_reduce"),
    schema=with_imagenet_style(ENTRANAS_SCHEMA),
)

register(
    "entranas-dst",
    policy="nasflow.search.policies.entranas:EnTranNASDST",
    describe=lambda s: describe(s, learned=True),
    settle=settle,
    columns=("temperature", "threshold", "lambda", "derived_edges_normal", "derived_edges_reduce"),
    schema=with_imagenet_style(DST_SCHEMA),
    settings_from="entranas",  # EnTranNAS's block under its own: section 2.4 changes the topology, not the rest
)
