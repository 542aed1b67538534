"""The published cells nasflow knows (the zoo: published_cells.json, with the counts their papers
report) and how a genotype is referred to: a zoo name, a JSON file, or a searched cell's id
(<name>-s<seed>-<index>). Torch-free, so that planning and fingerprints read them without building
anything."""
from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

from nasflow.errors import NasflowError

# <name>-s<seed>-<index>, and +<recipe> where a protocol's `retrain` entry trains that cell under a recipe of
# its own (ASAP-Medium: the ASAP cell at 44 channels; GOLD-NAS's Z-tr: a 44-channel point widened to 48)
SEARCHED_ID = re.compile(r"^(?P<method>[a-z][a-z0-9-]*?)-s(?P<seed>\d+)-(?P<index>\d+)(?:\+(?P<recipe>[A-Za-z0-9_.-]+))?$")


def own_recipe(arch_id: str) -> str | None:
    """The recipe a training id names (<name>-s<seed>-<index>+<recipe>); None where its search's applies."""
    m = SEARCHED_ID.match(arch_id)
    return m["recipe"] if m else None


def zoo_entries() -> dict[str, dict]:
    text = resources.files("nasflow.catalog").joinpath("published_cells.json").read_text()
    return {c["name"]: c for c in json.loads(text)["cells"]}


def genotype_source(ref) -> tuple[dict, str | None, str | None]:
    """What a genotype reference holds, unparsed: (its JSON object, its zoo name or None, its file or
    None). A zoo name, a path to a JSON file (either form), or an already parsed JSON object."""
    if isinstance(ref, dict):
        return ref, None, None
    ref = str(ref)
    entries = zoo_entries()
    if ref in entries:
        return entries[ref], ref, None
    path = Path(ref)
    if not path.is_file():
        raise NasflowError(f"genotype {ref!r} is neither a published cell name nor a file "
                           f"(see `nasflow zoo` for the names)")
    try:
        return json.loads(path.read_text()), None, ref
    except json.JSONDecodeError as exc:
        raise NasflowError(f"{path}: malformed JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
