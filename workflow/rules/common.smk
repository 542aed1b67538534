# The functions the rules call (Snakemake's linter asks that rules and functions live apart). What runs
# is the study's (nasflow.study, STUDY): these functions only hand it the searches' results as they end.
from nasflow.catalog.datasets import dataset_info


def data_input(dataset):
    """The prepared file a job on `dataset` reads; none for a dataset streamed from class folders."""
    return [] if dataset_info(dataset).streamed else [f"{DATA_ROOT}/{dataset}.npz"]


def archs_of(name, seed):
    """A search's architectures; asking for them waits for that search's checkpoint."""
    return layout.read_architectures(checkpoints.search.get(method=name, seed=seed).output.archs)


def chosen_seed(name):
    """The seed a `best_of` selection kept; asking for it waits for the selection's checkpoint."""
    return selection.chosen_seed(checkpoints.select.get(name=name).output[0])


def selection_inputs(wildcards):
    """What a selection compares: its searches, and for `by: short_retrain` their final cells' short trainings."""
    name = wildcards.name
    entry = STUDY.search_name(name)
    found = [f"{layout.search_dir(name, s)}/search.json" for s in entry.seeds]
    if entry.select["by"] == "short_retrain":
        found += [f"{layout.train_dir(a, d, s, 'short-retrain')}/metrics.json"
                  for a, d, s in STUDY.short_retrain_jobs(name, archs_of)]
    return found


def genotype_input(wildcards):
    """A searched cell's genotype file (its search must have run), or nothing for a published cell."""
    name = layout.arch_name(wildcards.arch_id)
    if name in STUDY.names:
        checkpoints.search.get(method=name, seed=layout.SEARCHED_ID.match(wildcards.arch_id)["seed"])
        return [layout.genotype_ref(wildcards.arch_id)]
    return []


def genotype_of(wildcards):
    """The genotype a training reads: a searched cell's file (its search has run: this job exists only
    after the search checkpoint) or a published cell's name. From the wildcards alone, not `input`:
    Snakemake leaves params that need `input` out of its check for changed params."""
    return layout.genotype_ref(wildcards.arch_id)


def recipe_of(wildcards):
    return STUDY.recipe_for(wildcards.arch_id, wildcards.dataset, wildcards.stage)


def training_outputs(wildcards=None):
    searched = STUDY.searched_architectures(archs_of, chosen_seed)
    return [f"{layout.train_dir(a, d, s)}/metrics.json" for a, d, s in STUDY.training_jobs(searched)]
