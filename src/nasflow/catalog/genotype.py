"""The `nasflow-genotype/1` format: one loader for the DARTS form, the general form and the zoo.

Inputs 0 and 1 of a cell are the two previous cells; node k is input k + 2. A node sums any number of
(op, input) pairs. The DARTS form (node k fed by entries 2k and 2k+1) converts losslessly both ways.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nasflow.errors import NasflowError
from nasflow.catalog.cells import genotype_source, zoo_entries
from nasflow.catalog.ops import OpSpec, parse_op

FORMAT = "nasflow-genotype/1"
LAYOUTS = ("shared", "per-position")
CELL_OUTPUTS = ("concat", "mean", "conv1x1")
# `arch_id` of a searched cell: <method>-s<search seed>-<index in its architectures.json>
_DARTS_KEYS = {"normal", "normal_concat", "reduce", "reduce_concat"}
_GENERAL_KEYS = {"format", "layout", "cell_output", "cells", "name"}


@dataclass(frozen=True)
class Edge:
    op: OpSpec
    input: int


@dataclass
class CellSpec:
    reduction: bool
    nodes: list[list[Edge]]
    concat: list[int]

    def edges(self):
        """(node index, edge) for every edge, in order."""
        return [(k, e) for k, node in enumerate(self.nodes) for e in node]

    def to_json(self):
        return {"reduction": self.reduction,
                "nodes": [[{"op": e.op.to_json(), "input": e.input} for e in node] for node in self.nodes],
                "concat": list(self.concat)}


@dataclass
class Genotype:
    cells: list[CellSpec]
    layout: str = "shared"
    cell_output: str = "concat"
    name: str | None = field(default=None, compare=False)

    def cell_at(self, position: int, reduction: bool) -> CellSpec:
        """The cell a network uses at a layer position."""
        if self.layout == "shared":
            return self.cells[1 if reduction else 0]
        return self.cells[position]

    def to_json(self) -> dict:
        out = {"format": FORMAT, "layout": self.layout, "cell_output": self.cell_output,
               "cells": [c.to_json() for c in self.cells]}
        if self.name:
            out["name"] = self.name
        return out

    def darts_compatible(self) -> bool:
        return (self.layout == "shared" and self.cell_output == "concat"
                and all(len(node) == 2 and not any(e.op.parametric for e in node)
                        for cell in self.cells for node in cell.nodes))

    def to_darts(self) -> dict:
        if not self.darts_compatible():
            raise NasflowError("this genotype has no DARTS form (it needs a shared layout, concat output, "
                               "two named ops per node); write it in the general form instead")
        out = {}
        for key, cell in (("normal", self.cells[0]), ("reduce", self.cells[1])):
            out[key] = [[e.op.name, e.input] for node in cell.nodes for e in node]
            out[key + "_concat"] = list(cell.concat)
        return out


def _check_cell(cell: CellSpec, where: str) -> CellSpec:
    if not cell.nodes:
        raise NasflowError(f"{where}: the cell is empty (it needs at least one node)")
    for k, node in enumerate(cell.nodes):
        if not node:
            raise NasflowError(f"{where}: node {k} has no inputs")
        for e in node:
            if not 0 <= e.input < k + 2:
                raise NasflowError(
                    f"{where}: node {k} is fed by input {e.input}, which does not exist yet (node {k} may "
                    f"read inputs 0..{k + 1}: the two previous cells" + (f" and nodes 0..{k - 1})" if k else ")"))
    if not cell.concat:
        raise NasflowError(f"{where}: the cell concatenates no node")
    for i in cell.concat:
        if not isinstance(i, int) or not 0 <= i < len(cell.nodes) + 2:
            raise NasflowError(f"{where}: concat index {i!r} is not a state of this cell "
                               f"(0..{len(cell.nodes) + 1})")
    return cell


def _edge(obj, where) -> Edge:
    if isinstance(obj, dict):
        if set(obj) - {"op", "input"} or "op" not in obj or "input" not in obj:
            raise NasflowError(f"{where}: an edge is {{\"op\": ..., \"input\": ...}}, got {obj!r}")
        op, inp = obj["op"], obj["input"]
    elif isinstance(obj, (list, tuple)) and len(obj) == 2:
        op, inp = obj
    else:
        raise NasflowError(f"{where}: an edge is [op, input], got {obj!r}")
    if isinstance(inp, bool) or not isinstance(inp, int):
        raise NasflowError(f"{where}: an edge's input must be an integer, got {inp!r}")
    try:
        return Edge(parse_op(op), inp)
    except NasflowError as exc:
        raise NasflowError(f"{where}: {exc}") from None


def _darts_cell(entries, concat, reduction, where) -> CellSpec:
    if not isinstance(entries, list) or not entries:
        raise NasflowError(f"{where}: the cell is empty (it needs at least one node)")
    if len(entries) % 2:
        raise NasflowError(f"{where}: the DARTS form needs two entries per node, got {len(entries)} entries")
    if not isinstance(concat, list):
        raise NasflowError(f"{where}_concat: must be a list of node indices, got {concat!r}")
    edges = [_edge(e, where) for e in entries]
    nodes = [edges[2 * k: 2 * k + 2] for k in range(len(edges) // 2)]
    return _check_cell(CellSpec(reduction, nodes, list(concat)), where)


def from_darts(obj: dict, name: str | None = None) -> Genotype:
    for key in ("normal", "reduce"):
        if key not in obj:
            raise NasflowError(f"DARTS-form genotype lacks {key!r}")
    cells = [_darts_cell(obj["normal"], obj.get("normal_concat", [2, 3, 4, 5]), False, "normal"),
             _darts_cell(obj["reduce"], obj.get("reduce_concat", [2, 3, 4, 5]), True, "reduce")]
    return Genotype(cells, name=name)


def from_general(obj: dict) -> Genotype:
    unknown = set(obj) - _GENERAL_KEYS
    if unknown:
        raise NasflowError(f"genotype has unknown keys {sorted(unknown)} (allowed: {sorted(_GENERAL_KEYS)})")
    if obj.get("format") != FORMAT:
        raise NasflowError(f"genotype format {obj.get('format')!r} is not {FORMAT!r}")
    layout = obj.get("layout", "shared")
    if layout not in LAYOUTS:
        raise NasflowError(f"genotype layout {layout!r} is not one of {LAYOUTS}")
    cell_output = obj.get("cell_output", "concat")
    if cell_output not in CELL_OUTPUTS:
        raise NasflowError(f"genotype cell_output {cell_output!r} is not one of {CELL_OUTPUTS}")
    raw = obj.get("cells")
    if not isinstance(raw, list) or not raw:
        raise NasflowError("genotype 'cells' must be a non-empty list")
    cells = []
    for i, c in enumerate(raw):
        where = f"cells[{i}]"
        if not isinstance(c, dict) or set(c) - {"reduction", "nodes", "concat"}:
            raise NasflowError(f"{where}: a cell is {{\"reduction\", \"nodes\", \"concat\"}}, got {c!r}")
        nodes = c.get("nodes")
        if not isinstance(nodes, list):
            raise NasflowError(f"{where}: 'nodes' must be a list of nodes")
        parsed = []
        for k, node in enumerate(nodes):
            if not isinstance(node, list):
                raise NasflowError(f"{where}.nodes[{k}]: a node is a list of edges")
            parsed.append([_edge(e, f"{where}.nodes[{k}]") for e in node])
        concat = c.get("concat", list(range(2, len(parsed) + 2)))
        cells.append(_check_cell(CellSpec(bool(c.get("reduction", False)), parsed, concat), where))
    if layout == "shared":
        if len(cells) != 2 or cells[0].reduction or not cells[1].reduction:
            raise NasflowError("a shared-layout genotype has exactly two cells: cells[0] normal "
                               "(reduction false), cells[1] reduction (reduction true)")
    return Genotype(cells, layout, cell_output, name=obj.get("name"))


def parse_genotype(obj, name: str | None = None) -> Genotype:
    if not isinstance(obj, dict):
        raise NasflowError(f"a genotype is a JSON object, got {type(obj).__name__}")
    if "format" in obj or "cells" in obj:
        return from_general(obj)
    if "normal" in obj or "reduce" in obj:
        unknown = {k for k in set(obj) - _DARTS_KEYS
                   if k not in ("name", "source", "note") and not k.startswith(("published_", "reference_"))
                   and not k.endswith("_native")}
        if unknown:
            raise NasflowError(f"DARTS-form genotype has unknown keys {sorted(unknown)}")
        return from_darts(obj, name or obj.get("name"))
    raise NasflowError("not a genotype: expected the DARTS form (normal/reduce) or the general form "
                       f"(format: {FORMAT})")


# ---- the zoo of published cells ----------------------------------------------------------------

def _native_edge(item) -> list:
    kind, kwargs, inp = item
    if kind == "conv":
        return [{"op": "conv", "k": kwargs["k"], "dil": kwargs.get("dil", 1), "c_mul": list(kwargs["c_mul"])}, inp]
    if kind == "skip":
        return ["skip_connect", inp]
    if kind == "pool" and kwargs.get("k", 3) == 3:
        return [f"{kwargs['type_']}_pool_3x3", inp]
    raise NasflowError(f"zoo: unsupported native PR-DARTS op {item!r}")


def zoo_genotype(name: str) -> Genotype:
    entries = zoo_entries()
    if name not in entries:
        raise NasflowError(f"no published cell named {name!r}; known: {', '.join(entries)}")
    entry = dict(entries[name])
    if "normal_native" in entry:
        # PR-DARTS cells are built from the source's own parametric form, not the shorthand names.
        entry["normal"] = [_native_edge(e) for e in entry["normal_native"]]
        entry["reduce"] = [_native_edge(e) for e in entry["reduce_native"]]
    return parse_genotype(entry, name=name)


def load_genotype(ref) -> Genotype:
    """A zoo name, a path to a JSON file (either form), or an already parsed JSON object."""
    if isinstance(ref, Genotype):
        return ref
    obj, zoo_name, path = genotype_source(ref)
    if zoo_name is not None:
        return zoo_genotype(zoo_name)
    try:
        return parse_genotype(obj, name=Path(path).stem if path else None)
    except NasflowError as exc:
        raise NasflowError(f"{path}: {exc}" if path else str(exc)) from None