"""DARTS: a whole search on the smoke profile, first and second order."""
import csv
import json
import math

import pytest

from conftest import QUIET, run_cli, smoke_search


def _history(out):
    with open(out / "history.csv") as fh:
        return list(csv.DictReader(fh))


@smoke_search
@pytest.mark.parametrize("order", ["first", "second"])
def test_darts_runs_and_derives_a_valid_cell(smoke_params, tmp_path, order):
    out = tmp_path / order
    res = run_cli("search", "--method", "darts", "--params", smoke_params, "--out", out, *QUIET,
                  "--set", f"search.darts.order={order}", "--set", "search.darts.epochs=1")
    assert res.returncode == 0, res.stderr
    genotype = json.loads((out / "genotype.json").read_text())
    for cell in genotype["cells"]:
        assert len(cell["nodes"]) == 4
        for k, node in enumerate(cell["nodes"]):
            assert len(node) == 2 and all(e["op"] != "none" and e["input"] < k + 2 for e in node)
    rows = _history(out)
    assert len(rows) == 1 and rows[0]["phase"] == "search" and math.isfinite(float(rows[0]["val_loss"]))
