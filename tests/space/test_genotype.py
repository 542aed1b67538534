import json

import pytest

from nasflow.errors import NasflowError
from nasflow.catalog.cells import zoo_entries
from nasflow.catalog.genotype import FORMAT, load_genotype, parse_genotype, zoo_genotype


@pytest.mark.parametrize("name", list(zoo_entries()))
def test_every_zoo_cell_round_trips_through_the_general_form(name):
    g = zoo_genotype(name)
    again = parse_genotype(json.loads(json.dumps(g.to_json())))
    assert again == g
    assert again.to_json() == g.to_json()


@pytest.mark.parametrize("name", [n for n in zoo_entries() if not n.startswith("PR_DARTS")])
def test_darts_form_converts_losslessly(name):
    entry = zoo_entries()[name]
    darts = {k: entry[k] for k in ("normal", "normal_concat", "reduce", "reduce_concat")}
    g = parse_genotype(darts)
    assert g.to_darts() == darts
    assert parse_genotype(g.to_darts()) == g


def test_pr_darts_cells_are_parametric_and_have_no_darts_form():
    g = zoo_genotype("PR_DARTS_UR")
    ops = [e.op for c in g.cells for _, e in c.edges()]
    assert any(op.parametric and op.c_mul == (1, 1, 1) for op in ops)
    with pytest.raises(NasflowError, match="no DARTS form"):
        g.to_darts()
    # DL1 uses c_mul=[1] convs, the DARTS sep conv: same structure, same counts as its shorthand.
    dl1 = zoo_genotype("PR_DARTS_DL1")
    assert dl1.cells[0].nodes[0][0].op.to_json() == {"op": "conv", "k": 5, "dil": 1, "c_mul": [1]}


def test_general_form_with_many_inputs_per_node_and_per_position_layout():
    cell = lambda red: {"reduction": red, "nodes": [
        [{"op": "sep_conv_3x3", "input": 0}, {"op": "skip_connect", "input": 0}, {"op": "max_pool_3x3", "input": 1}],
        [{"op": {"op": "conv", "k": 7, "dil": 1, "c_mul": [2]}, "input": 2}]], "concat": [2, 3]}
    obj = {"format": FORMAT, "layout": "per-position", "cell_output": "mean",
           "cells": [cell(i in (1, 2)) for i in range(4)]}
    g = parse_genotype(obj)
    assert len(g.cells[0].nodes[0]) == 3
    assert g.to_json() == obj
    assert g.cell_at(2, True) is g.cells[2]


@pytest.mark.parametrize("obj,message", [
    ({"normal": [["sep_conv_9x9", 0], ["skip_connect", 1]], "reduce": [["skip_connect", 0], ["skip_connect", 1]]},
     "unknown op 'sep_conv_9x9'"),
    ({"normal": [["sep_conv_3x3", 0], ["skip_connect", 2]], "reduce": [["skip_connect", 0], ["skip_connect", 1]]},
     "node 0 is fed by input 2, which does not exist yet"),
    ({"normal": [], "reduce": [["skip_connect", 0], ["skip_connect", 1]]}, "the cell is empty"),
    ({"normal": [["skip_connect", 0]], "reduce": [["skip_connect", 0], ["skip_connect", 1]]}, "two entries per node"),
    ({"normal": [["skip_connect", 0], ["skip_connect", 1]], "reduce": [["skip_connect", 0], ["skip_connect", 1]],
      "normal_concat": [2, 7]}, "concat index 7"),
    ({"normal": [["skip_connect", 0], ["skip_connect", "x"]], "reduce": [["skip_connect", 0], ["skip_connect", 1]]},
     "input must be an integer"),
    ({"format": FORMAT, "cells": [{"reduction": False, "nodes": [[{"op": "skip_connect", "input": 0}]]}]},
     "exactly two cells"),
    ({"format": FORMAT, "layout": "diagonal", "cells": []}, "layout 'diagonal'"),
    ({"format": FORMAT, "cells": [{"reduction": False, "nodes": [[]], "concat": [2]},
                                  {"reduction": True, "nodes": [[{"op": "none", "input": 0}]]}]}, "node 0 has no inputs"),
    ({"format": FORMAT, "cells": [{"reduction": False, "nodes": [[{"op": {"op": "conv", "k": 4, "c_mul": []}, "input": 0}]]},
                                  {"reduction": True, "nodes": [[{"op": "none", "input": 0}]]}]}, "odd positive kernel"),
    ([1, 2], "a genotype is a JSON object"),
    ({"normal": [["skip_connect", 0], ["skip_connect", 1]], "reduce": [["skip_connect", 0], ["skip_connect", 1]],
      "normal_concatt": [2]}, "unknown keys"),
])
def test_impossible_or_malformed_genotypes_are_refused(obj, message):
    with pytest.raises(NasflowError, match=message.replace("(", r"\(").replace("[", r"\[")):
        parse_genotype(obj)


def test_malformed_json_file_names_the_position(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"normal": [["sep_conv_3x3", 0],')
    with pytest.raises(NasflowError, match="malformed JSON"):
        load_genotype(path)
