"""src/nasflow/catalog/published.csv against the four papers' plain text (../shared/papers).

Every number of a row must be a number token of the paper line that carries the row (the line that starts
with the row's label, or the verbatim lines in `line`); on one-line tables the tokens after the label must
also come in the table's column order (so a CIFAR-10 figure cannot pass as the CIFAR-100 one); GOLD-NAS
prints its tables column by column, one number a line, so its columns are rebuilt from the text and each
row is read off them by position. The check functions return lists of problems, so that the last tests can
show that corrupted copies of the rows are refused."""
import copy
import csv
import fnmatch
import re
from decimal import Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CSV_PATH = ROOT / "src" / "nasflow" / "catalog" / "published.csv"
PAPERS = ROOT.parent / "shared" / "papers"
needs_papers = pytest.mark.skipif(not PAPERS.is_dir(), reason=f"needs the papers' text in {PAPERS}")

COLUMNS = ["paper", "table", "row", "nasflow", "match", "recipe", "dataset", "metric", "cell", "test_error", "test_error_std", "top5_error", "params_M",
           "macs_M", "search_gpu_days", "line", "differs", "no_run"]
NUMBER_FIELDS = ["test_error", "test_error_std", "top5_error", "params_M", "macs_M", "search_gpu_days"]
PAPER_NAMES = {"asap", "gold-nas", "pr-darts", "entrannas"}
MATCHES = {"final", "picked", "nearest_macs", "nearest_params"}
DATASETS = {"cifar10", "cifar100", "cinic10", "freiburg", "svhn", "fashion-mnist", "imagenet"}


def _paper_profile_names() -> list[str]:
    """The searches of the paper profile: every published row is compared with one of them."""
    from nasflow.settings import load_params

    return load_params(ROOT / "params.yaml", "paper")["search"]["names"]


ROW_COUNTS = {
    ("asap", "Table 1"): 5,       # DARTS(2nd), DARTS(1nd) (printed twice, kept once), ASAP-Small/Medium/Large
    ("asap", "Table 2"): 42,      # AmoebaNet-A, NASNet, PNAS, SNAS, DARTS-Rev1, DARTS-Rev2, ASAP x 6 datasets
    ("asap", "Table 3"): 4,       # DARTS(2st), Magnitude prune, Accum-Grad prune, ASAP-Small
    ("gold-nas", "Table 1"): 14,  # DARTS 1st/2nd order, GOLD-NAS-A..L
    ("gold-nas", "Table 2"): 6,
    ("gold-nas", "Section 4.2"): 1,   # random search (4.2, B.4)
    ("gold-nas", "Appendix A.2"): 1,  # one-level search in DARTS's space   # DARTS, GOLD-NAS-I (transferred), X, Y, Z, Z-tr (searched on ImageNet)
    ("pr-darts", "Table 3"): 9,   # DARTS 1st/2nd order, DL1, DL2, DR on CIFAR-10 and -100, UR on CIFAR-10
    ("entrannas", "Table 1"): 4,  # Engine-cells all (DARTS) / one half / last / first
    ("entrannas", "Table 4"): 3,  # EnTranNAS-DST on ImageNet at lambda 0.2, 0.1, 0.05 (sizes only: Figure 5 plots errors)
    ("entrannas", "Table 6"): 4,  # DARTS (2nd order), EnTranNAS, EnTranNAS-DST, EnTranNAS (12 operations)
    ("entrannas", "Table 7"): 4,  # DARTS (2nd order), EnTranNAS (CIFAR-10), EnTranNAS (ImageNet), EnTranNAS-DST
}

# One-line tables: the number tokens after the row label (citations removed), in column order. "field@dataset"
# is that dataset's row's field, "*" a printed number not transcribed (no CSV column for it); the second item
# is how many trailing tokens may follow (PR-DARTS's #ops "15†/15‡").
LAYOUT = {
    ("asap", "Table 1"): (["test_error", "test_error_std", "params_M", "search_gpu_days"], 0),
    ("asap", "Table 2"): ([f"test_error@{d}" for d in ("cinic10", "freiburg", "cifar100", "svhn", "fashion-mnist",
                                                       "imagenet")] + ["search_gpu_days"], 0),
    ("asap", "Table 3"): (["test_error", "params_M"], 0),
    ("pr-darts", "Table 3"): (["params_M", "test_error@cifar10", "test_error_std@cifar10", "test_error@cifar100",
                               "test_error_std@cifar100", "search_gpu_days"], 2),
    ("entrannas", "Table 1"): (["*", "test_error"], 0),  # super-net accuracy, child-net accuracy
    ("entrannas", "Table 4"): (["*", "*", "params_M", "macs_M"], 0),  # lambda, edges N / R, params, FLOPs
    ("entrannas", "Table 6"): (["test_error", "test_error_std", "params_M", "search_gpu_days"], 0),
    ("entrannas", "Table 7"): (["test_error", "top5_error", "params_M", "macs_M", "search_gpu_days"], 0),
}
# GOLD-NAS prints fewer numbers in some columns than rows; the rows without an entry (bottom-aligned reading
# would shift the rest). Table 1's FLOPs column has 19 numbers for 21 rows: DenseNet-BC (hand-designed, no
# search cost either) and one DARTS row print none; 441 = SNAS (moderate), and 528 is DARTS (2nd-order), the
# FLOPs of the DARTS_V2 cell (nasflow counts 528.4 M, 501 M for DARTS_V1): DARTS (1st-order) has none.
GOLD_MISSING = {
    "Table 1": {"search_gpu_days": {"DenseNet-BC"}, "macs_M": {"DenseNet-BC", "DARTS (1st-order)"}},
    "Table 2": {"search_gpu_days": {"Inception-v1", "MobileNet", "ShuffleNet 2× (v2)", "MnasNet-92"}},
}

CITATION = re.compile(r"\[\d+(?:\s*,\s*\d+)*\]")
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?")


def numbers(text: str) -> list[str]:
    """The number tokens of a line as printed ("2.74± 0.12" -> 2.74, 0.12; "3.3M" -> 3.3; "×2" -> 2),
    citations such as [12] left out; digits inside words (C10, DL1, v2) are not numbers."""
    return NUMBER.findall(CITATION.sub(" ", text))


def complement(printed: str) -> str:
    """100 - printed, with the printed number of decimals (97.24 -> 2.76)."""
    return str(Decimal(100) - Decimal(printed))


def matches(field: str, value: str, token: str) -> bool:
    return token == value or (field == "test_error" and complement(token) == value)


def load_rows(path: Path = CSV_PATH) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def load_papers() -> dict[str, list[str]]:
    return {name: [line.strip() for line in (PAPERS / f"{name}.txt").read_text(encoding="utf-8").splitlines()]
            for name in PAPER_NAMES}


def label_lines(lines: list[str], label: str) -> list[str]:
    """The paper lines that start with the row label (as a whole: "ASAP" is not "ASAP-Small")."""
    return [line for line in lines if line.startswith(label)
            and (len(line) == len(label) or line[len(label)].isspace() or line[len(label)] == "[")]


def filled(row: dict) -> dict[str, str]:
    return {f: row[f] for f in NUMBER_FIELDS if row[f] != ""}


def where(row: dict) -> str:
    return f"{row['paper']} {row['table']} {row['row']!r} ({row['dataset']})"


def check_numbers(rows: list[dict], papers: dict[str, list[str]]) -> list[str]:
    """Each number of a row is a number token of the line carrying the row: a line that starts with the
    label, or, where `line` is given, the quoted paper lines (each must be a whole line of the paper)."""
    problems = []
    for row in rows:
        lines = papers[row["paper"]]
        labelled = label_lines(lines, row["row"])
        if not labelled and not row["table"].startswith("Table"):
            labelled = row["line"].split(" | ")  # quoted from the text: its lines carry no row label
        if not labelled:
            problems.append(f"{where(row)}: no paper line starts with the label")
            continue
        if row["line"]:
            pieces = row["line"].split(" | ")
            absent = [p for p in pieces if p not in lines]
            if absent:
                problems.append(f"{where(row)}: `line` pieces not lines of the paper: {absent}")
                continue
            candidates = [[numbers(p) for p in pieces]]
        else:
            candidates = [[numbers(line[len(row["row"]):])] for line in labelled]
        for tokens_per_piece in candidates:
            tokens = [t for piece in tokens_per_piece for t in piece]
            missing = [f"{f}={v}" for f, v in filled(row).items() if not any(matches(f, v, t) for t in tokens)]
            unused = [p for p in tokens_per_piece
                      if not any(matches(f, v, t) for f, v in filled(row).items() for t in p)]
            if not missing and not (row["line"] and unused):
                break
        else:
            problems.append(f"{where(row)}: not on its line: {missing}" + (", pieces without a number of the row"
                                                                          if row["line"] and unused else ""))
    return problems


def groups(rows: list[dict]) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = {}
    for row in rows:
        out.setdefault((row["paper"], row["table"], row["row"]), []).append(row)
    return out


def check_layout(rows: list[dict], papers: dict[str, list[str]]) -> list[str]:
    """On one-line tables the numbers after the label are, in order, the table's columns (LAYOUT)."""
    problems = []
    for (paper, table, label), members in groups(rows).items():
        if (paper, table) not in LAYOUT:
            continue
        spec, trailing = LAYOUT[(paper, table)]
        expected = []  # (field, value) or None for "*"
        for column in spec:
            if column == "*":
                expected.append(None)
                continue
            field, _, dataset = column.partition("@")
            values = {m[field] for m in members if not dataset or m["dataset"] == dataset}
            if len(values) > 1:
                problems.append(f"{paper} {table} {label!r}: {field} differs between its datasets: {values}")
            value = values.pop() if values else ""
            if value:
                expected.append((field, value))
        for line in label_lines(papers[paper], label):
            tokens = numbers(line[len(label):])
            if 0 <= len(tokens) - len(expected) <= trailing and all(
                    e is None or matches(e[0], e[1], t) for e, t in zip(expected, tokens)):
                break
        else:
            problems.append(f"{paper} {table} {label!r}: no line carries {expected} in column order")
    return problems


def _blocks(lines: list[str]) -> list[list[str]]:
    out, block = [], []
    for line in lines + [""]:
        if line:
            block.append(line)
        elif block:
            out.append(block)
            block = []
    return out


def _region(lines: list[str], first: str, last_prefix: str) -> list[str]:
    start = lines.index(first)
    end = next(i for i in range(start, len(lines)) if lines[i].startswith(last_prefix))
    return lines[start:end]


def _label(text: str) -> str:
    return " ".join(CITATION.sub(" ", text).split())


def gold_columns(lines: list[str]) -> dict[str, dict[str, dict[str, str]]]:
    """GOLD-NAS Tables 1 and 2 rebuilt from the column-by-column text: table -> label -> field -> number
    ("" where the paper prints none)."""
    tables = {}
    blocks = _blocks(_region(lines, "Test Err. (%)", "Table 1: Comparison"))
    by_head = {b[0]: b for b in blocks}
    labels = [_label(x) for x in by_head["Architecture"][1:] if not x.startswith("µ=")]
    average = by_head["average"][1:]
    columns = {
        "test_error": [a.split("±")[0] for a in average],
        "test_error_std": [a.split("±")[1] if "±" in a else "" for a in average],
        "top5_error": [""] * len(labels),  # CIFAR-10: top-1 only
        "params_M": next(b for b in blocks if b[0].startswith("Params"))[2:],
        "search_gpu_days": by_head["(GPU-days)"][1:],
        "macs_M": by_head["(M)"][1:],
    }
    tables["Table 1"] = _align(labels, columns, GOLD_MISSING["Table 1"])
    blocks = _blocks(_region(lines, "Test Err. (%) Params ×+ Search Cost", "The searched architectures Table 2:"))
    by_head = {b[0]: b for b in blocks}
    labels = [_label(x) for x in by_head["Architecture"][1:]]
    no_cost = GOLD_MISSING["Table 2"]["search_gpu_days"]
    mixed = iter(by_head["(M) (GPU-days)"][1:])  # each row's FLOPs, then its search cost where it has one
    macs, cost = [], []
    for label in labels:
        macs.append(next(mixed))
        if label not in no_cost:
            cost.append(next(mixed))
    assert next(mixed, None) is None, "GOLD-NAS Table 2: FLOPs / search-cost column longer than its rows"
    columns = {"test_error": [x.split()[0] for x in by_head["top-1 top-5"][1:]], "test_error_std": [""] * len(labels),
               "top5_error": [(x.split() + [""])[1] for x in by_head["top-1 top-5"][1:]],
               "params_M": by_head["(M)"][1:], "macs_M": macs, "search_gpu_days": cost}
    tables["Table 2"] = _align(labels, columns, GOLD_MISSING["Table 2"])
    return tables


def _align(labels, columns, missing) -> dict[str, dict[str, str]]:
    out = {label: {} for label in labels}
    for field, values in columns.items():
        present = [x for x in labels if x not in missing.get(field, set())]
        assert len(values) == len(present), f"GOLD-NAS column {field}: {len(values)} numbers for {len(present)} rows"
        for label in labels:
            out[label][field] = values[present.index(label)] if label in present else ""
    return out


def check_gold_columns(rows: list[dict], papers: dict[str, list[str]]) -> list[str]:
    """GOLD-NAS rows equal the numbers at their row's position in the rebuilt columns."""
    tables = gold_columns(papers["gold-nas"])
    problems = []
    for row in rows:
        if row["paper"] != "gold-nas" or not row["table"].startswith("Table"):  # text: check_numbers' lines
            continue
        printed = tables.get(row["table"], {}).get(row["row"])
        if printed is None:
            problems.append(f"{where(row)}: no such row in the rebuilt table")
            continue
        wrong = {f: (row[f], printed[f]) for f in NUMBER_FIELDS if row[f] != printed[f]}
        if wrong:
            problems.append(f"{where(row)}: (csv, paper) differ: {wrong}")
    return problems


def check_counts(rows: list[dict]) -> list[str]:
    counts: dict[tuple, int] = {}
    for row in rows:
        counts[(row["paper"], row["table"])] = counts.get((row["paper"], row["table"]), 0) + 1
    return [f"{k}: {counts.get(k, 0)} rows, expected {ROW_COUNTS.get(k, 0)}"
            for k in sorted(set(counts) | set(ROW_COUNTS)) if counts.get(k, 0) != ROW_COUNTS.get(k, 0)]


def check_all(rows, papers) -> list[str]:
    return check_numbers(rows, papers) + check_layout(rows, papers) + check_gold_columns(rows, papers) + \
        check_counts(rows)


@pytest.fixture(scope="module")
def rows():
    return load_rows()


@pytest.fixture(scope="module")
def papers():
    return load_papers()


def test_columns_and_vocabularies(rows):
    from nasflow.catalog.cells import zoo_entries

    names, zoo = _paper_profile_names(), zoo_entries()
    from nasflow.settings import load_params

    recipes = load_params(ROOT / "params.yaml", "paper")["train"]["recipes"]
    with open(CSV_PATH, newline="", encoding="utf-8") as f:
        assert next(csv.reader(f)) == COLUMNS
    for row in rows:
        assert row["paper"] in PAPER_NAMES, where(row)
        assert row["match"] in MATCHES, where(row)
        assert row["dataset"] in DATASETS, where(row)
        # a name of the paper profile's searches, or a pattern (ASAP Table 3 does not say which p) naming some
        # (a published cell no search of the four papers stands for, ASAP Table 2's baselines, names none)
        # (or, where no run stands for it, a reason)
        assert fnmatch.filter(names, row["nasflow"]) or (not row["nasflow"] and (row["cell"] or row["no_run"])), where(row)
        assert row["cell"] == "" or row["cell"] in zoo, where(row)
        assert row["recipe"] == "" or row["recipe"] in recipes, where(row)
        assert row["metric"] == ("child_val_error" if (row["paper"], row["table"]) == ("entrannas", "Table 1")
                                 else "test_error"), where(row)
        expected_match = ("picked" if row["nasflow"].startswith("gold-nas-imagenet") else
                          "final" if row["nasflow"] in ("gold-nas-random", "") else
                          "nearest_macs" if row["nasflow"].startswith("gold-nas") else
                          "nearest_params" if row["nasflow"].startswith("pr-darts") else "final")
        assert row["match"] == expected_match, where(row)
        # a figure printed in the text (GOLD-NAS's random search) is quoted by its lines
        assert re.fullmatch(r"Table \d+", row["table"]) or (re.fullmatch(r"(Section|Appendix) [A-Z\d.]+", row["table"])
                                                            and row["line"]), where(row)
        for field in NUMBER_FIELDS:
            assert row[field] == "" or re.fullmatch(r"\d+(\.\d+)?", row[field]), (where(row), field, row[field])
    keys = [(r["paper"], r["table"], r["row"], r["dataset"]) for r in rows]
    assert len(keys) == len(set(keys)), "a (paper, table, row, dataset) appears twice"


def test_row_counts(rows):
    assert check_counts(rows) == []


def test_loads_with_pandas():
    pd = pytest.importorskip("pandas")
    frame = pd.read_csv(CSV_PATH)
    assert list(frame.columns) == COLUMNS
    sizes_only = frame["table"].eq("Table 4") & frame["paper"].eq("entrannas")  # its errors are a figure
    assert frame.loc[~sizes_only, "test_error"].notna().all() and frame.loc[sizes_only, "test_error"].isna().all()
    assert frame.loc[sizes_only, ["params_M", "macs_M"]].notna().all().all()
    errors = frame["test_error"].dropna()
    assert ((errors > 0) & (errors < 100)).all()
    assert set(frame.loc[frame["top5_error"].notna(), "dataset"]) == {"imagenet"}
    for field in ["test_error_std", "top5_error", "params_M", "macs_M", "search_gpu_days"]:
        assert pd.api.types.is_float_dtype(frame[field]) or pd.api.types.is_integer_dtype(frame[field]), field
        assert (frame[field].dropna() > 0).all(), field


@needs_papers
def test_numbers_are_on_the_rows_lines(rows, papers):
    assert check_numbers(rows, papers) == []


@needs_papers
def test_one_line_rows_in_column_order(rows, papers):
    assert check_layout(rows, papers) == []


@needs_papers
def test_gold_nas_columns(rows, papers):
    assert check_gold_columns(rows, papers) == []


def _set(paper, table, label, dataset, **fields):
    def corrupt(rows):
        hits = [r for r in rows if (r["paper"], r["table"], r["row"], r["dataset"]) == (paper, table, label, dataset)]
        assert len(hits) == 1
        hits[0].update(fields)
        return rows
    return corrupt


def _swap_datasets(rows):  # PR-DARTS DL1: CIFAR-10 and CIFAR-100 errors exchanged
    a, b = [r for r in rows if r["paper"] == "pr-darts" and r["row"] == "PR-DARTS DL1"]
    for f in ("test_error", "test_error_std"):
        a[f], b[f] = b[f], a[f]
    return rows


def _drop_row(rows):
    return rows[:-1]


CORRUPTIONS = {
    "wrong digit": _set("asap", "Table 1", "ASAP-Small", "cifar10", test_error="1.98"),
    "digits dropped": _set("gold-nas", "Table 1", "DARTS (1st-order)", "cifar10", test_error="3.0"),
    "wrong accuracy conversion": _set("entrannas", "Table 1", "last", "cifar10", test_error="16.35"),
    "super-net instead of child-net": _set("entrannas", "Table 1", "first", "cifar10", test_error="13.32"),
    "transfer column shifted": _set("asap", "Table 2", "ASAP", "svhn", test_error="15.6"),
    "CIFAR-10 / CIFAR-100 swapped": _swap_datasets,
    "params of the neighbour row": _set("pr-darts", "Table 3", "PR-DARTS DR", "cifar10", params_M="4.0"),
    "GOLD-NAS: the next row's FLOPs, quoted consistently": _set(
        "gold-nas", "Table 1", "GOLD-NAS-B", "cifar10", macs_M="287", line="2.97±0.12 | 1.72 | 0.4 | 287"),
    "GOLD-NAS: line not in the paper": _set("gold-nas", "Table 2", "GOLD-NAS-Z‡", "imagenet",
                                            line="24.0 7.3 | 6.3 | 585 | 1.8", search_gpu_days="1.8"),
    "a row missing": _drop_row,
}


@needs_papers
@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_a_corrupted_copy_is_refused(rows, papers, name):
    """The checks above on a corrupted copy of the rows (the file itself is untouched)."""
    assert check_all(rows, papers) == []
    assert check_all(CORRUPTIONS[name](copy.deepcopy(rows)), papers) != []


@needs_papers
def test_every_published_measure_is_on_its_line_of_the_paper_and_names_what_nasflow_runs(papers):
    """published_measures.csv (EnTranNAS Tables 1-3): each value is on its quoted line, which starts with the
    row's label; a super-net error is 100 - the printed accuracy; a Kendall tau keeps its sign; each row
    names a paper-profile search or a `nasflow bench search` rung, or says why it has none."""
    from nasflow.catalog.published import measures
    from nasflow.search.bench import RUNGS

    table = measures()
    assert list(table.columns) == ["paper", "table", "row", "nasflow", "measure", "value", "line", "no_run"]
    assert set(table["measure"]) == {"supernet_val_error", "kendall_tau", "memory_gb_at_batch_64", "search_gpu_days"}
    names = _paper_profile_names()
    for _, row in table.iterrows():
        where = f"{row['paper']} {row['table']} {row['row']!r} {row['measure']}"
        assert row["line"] in papers[row["paper"]] and row["line"].startswith(row["row"] + " "), where
        printed = re.findall(r"-?\d+(?:\.\d+)?", row["line"][len(row["row"]):])
        value = f"{row['value']:.2f}"
        if row["measure"] == "supernet_val_error":
            assert any(complement(t) == value for t in printed), where
        else:
            assert any(f"{float(t):.2f}" == value for t in printed), where
        if row["no_run"]:
            assert not row["nasflow"], where
        elif row["table"] == "Table 3":
            assert row["nasflow"] in RUNGS, where
        else:
            assert row["nasflow"] in names, where
    assert table.groupby(["table", "measure"]).size().to_dict() == {
        ("Table 1", "supernet_val_error"): 4, ("Table 2", "kendall_tau"): 5, ("Table 3", "memory_gb_at_batch_64"): 4,
        ("Table 3", "search_gpu_days"): 4}


def test_a_method_finds_its_published_measure_and_nothing_else_does():
    from nasflow.catalog.published import measure_of

    assert measure_of("entranas-dst-kendall", "kendall_tau") == (0.6, "entrannas Table 2 EnTranNAS-DST")
    assert measure_of("darts-kendall", "kendall_tau")[0] == -0.47
    assert measure_of("entranas-engine-last", "supernet_val_error")[0] == pytest.approx(100 - 84.02)
    assert measure_of("+ bottleneck", "memory_gb_at_batch_64")[0] == 1.5
    assert measure_of("darts", "kendall_tau") is None and measure_of("entranas", "kendall_tau") is None
