"""What an op is, without building it: the primitive names and PR-DARTS's parametric separable conv.
Kept free of torch so that genotypes, settings and the pipeline's planning read without it."""
from __future__ import annotations

from dataclasses import dataclass

from nasflow.errors import NasflowError

# Names are grouped by what they are built from; the order inside each group is the papers' order.
POOLS = {"max_pool_3x3": "max", "avg_pool_3x3": "avg"}
SEP_CONVS = {"sep_conv_3x3": 3, "sep_conv_5x5": 5, "sep_conv_7x7": 7}
DIL_CONVS = {"dil_conv_3x3": 3, "dil_conv_5x5": 5}
PLAIN_CONVS = {"conv_1x1": 1, "conv_3x3": 3}
FACTORISED_CONVS = {"conv_7x1_1x7": 7, "conv_1x3_3x1": 3, "conv_1x5_5x1": 5, "conv_1x7_7x1": 7}
PRIMITIVES = (
    ["none", "skip_connect"] + list(POOLS) + list(SEP_CONVS) + list(DIL_CONVS)
    + list(PLAIN_CONVS) + list(FACTORISED_CONVS)
)
DARTS_OPS = ["none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
             "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"]
ENTRANAS_EXTRA_OPS = ["conv_1x1", "conv_3x3", "conv_1x3_3x1", "conv_1x5_5x1", "conv_1x7_7x1"]


@dataclass(frozen=True)
class OpSpec:
    """A primitive (`name` set) or a parametric separable conv (`name == "conv"`, k/dil/c_mul set)."""

    name: str
    k: int = 0
    dil: int = 1
    c_mul: tuple[int, ...] = ()

    @property
    def parametric(self) -> bool:
        return self.name == "conv"

    def to_json(self):
        if self.parametric:
            return {"op": "conv", "k": self.k, "dil": self.dil, "c_mul": list(self.c_mul)}
        return self.name

    def label(self) -> str:
        if not self.parametric:
            return self.name
        mul = ",".join(str(m) for m in self.c_mul)
        return f"conv{self.k}x{self.k}" + (f"_d{self.dil}" if self.dil != 1 else "") + f"[{mul}]"

    @property
    def is_identity(self) -> bool:
        return self.name == "skip_connect"


def parse_op(obj) -> OpSpec:
    """Read an op from the genotype format; every malformed case is one clear error."""
    if isinstance(obj, str):
        if obj not in PRIMITIVES:
            raise NasflowError(f"unknown op {obj!r}; known ops: {', '.join(PRIMITIVES)} or a parametric "
                               '{"op": "conv", "k": K, "dil": D, "c_mul": [...]}')
        return OpSpec(obj)
    if isinstance(obj, dict) and obj.get("op") == "conv":
        extra = set(obj) - {"op", "k", "dil", "c_mul"}
        if extra:
            raise NasflowError(f"parametric conv has unknown keys {sorted(extra)}")
        k, dil, c_mul = obj.get("k"), obj.get("dil", 1), obj.get("c_mul")
        if not isinstance(k, int) or k < 1 or k % 2 == 0:
            raise NasflowError(f"parametric conv needs an odd positive kernel size 'k', got {k!r}")
        if not isinstance(dil, int) or dil < 1:
            raise NasflowError(f"parametric conv needs a positive integer 'dil', got {dil!r}")
        if not isinstance(c_mul, list) or not all(isinstance(m, int) and m >= 1 for m in c_mul):
            raise NasflowError(f"parametric conv needs 'c_mul', a list of positive integers, got {c_mul!r}")
        return OpSpec("conv", k=k, dil=dil, c_mul=tuple(c_mul))
    raise NasflowError(f"an op must be a name or a parametric conv object, got {obj!r}")


@dataclass(frozen=True)
class Limits:
    """Table 2's constraints on a convolution. None: no limit (the unrestricted space's depth/width)."""

    k_min: int = 3
    k_max: int = 7
    dil_min: int = 1
    dil_max: int = 2
    max_depth: int | None = 1   # len(c_mul): expansion layers beyond the first separable layer
    max_width: int | None = 1   # the largest expansion multiple

    def allows(self, spec: OpSpec) -> bool:
        if not spec.parametric:
            return True
        if not (self.k_min <= spec.k <= self.k_max and self.dil_min <= spec.dil <= self.dil_max):
            return False
        if spec.k == 1 and spec.dil > 1:  # a dilated 1x1 is the 1x1: Table 2 leaves it out
            return False
        if self.max_depth is not None and len(spec.c_mul) > self.max_depth:
            return False
        return self.max_width is None or all(m <= self.max_width for m in spec.c_mul)


def conv_form(spec: OpSpec) -> OpSpec | None:
    """The parametric form of a separable primitive (sep_conv_5x5 is conv k=5 c_mul=[1]), else None."""
    if spec.parametric:
        return spec
    if spec.name in SEP_CONVS:
        return OpSpec("conv", k=SEP_CONVS[spec.name], dil=1, c_mul=(1,))
    if spec.name in DIL_CONVS:
        return OpSpec("conv", k=DIL_CONVS[spec.name], dil=2, c_mul=())
    return None
