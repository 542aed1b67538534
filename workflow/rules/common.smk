# The functions the rules call (Snakemake's linter asks that rules and functions live apart).


def streamed(dataset):
    """Read from its class folders at run time: no prepared file (its storage in nasflow.catalog.datasets)."""
    from nasflow.catalog.datasets import dataset_info

    return dataset_info(dataset).streamed


def data_input(dataset):
    """The prepared file a job on `dataset` reads; none for a dataset streamed from class folders."""
    return [] if streamed(dataset) else [f"{DATA_ROOT}/{dataset}.npz"]


def datasets_used():
    from nasflow.jobs import method_settings

    names = [method_settings(PARAMS, m)["dataset"] for m in protocol.names(PARAMS)]
    names += [protocol.retrain_dataset(PARAMS, m) for m in protocol.names(PARAMS)]
    names += [PARAMS["train"]["dataset"], *PARAMS["train"]["transfer"]["datasets"]]
    return [n for n in dict.fromkeys(names) if not streamed(n)]


def archs_file(name, seed):
    """A search's architectures.json; asking for it waits for that search's checkpoint."""
    return checkpoints.search.get(method=name, seed=seed).output.archs


def chosen_seed(name):
    """The seed a `best_of` selection kept; asking for it waits for the selection's checkpoint."""
    return selection.chosen_seed(checkpoints.select.get(name=name).output[0])


def searched(wildcards=None):
    """Every architecture the kept searches yielded (all of a name's, or its selection's)."""
    return plan.searched_architectures(PARAMS, archs_file, chosen_seed)


def selection_inputs(wildcards):
    """What a selection compares: its searches, and for `by: short_retrain` their final cells' short trainings."""
    name = wildcards.name
    found = [f"{plan.search_dir(name, s)}/search.json" for s in protocol.search_seeds(PARAMS, name)]
    if protocol.selection(PARAMS, name)["by"] == "short_retrain":
        found += [f"{plan.train_dir(a, d, s, 'short-retrain')}/metrics.json"
                  for a, d, s in plan.short_retrain_jobs(PARAMS, name, archs_file)]
    return found


def genotype_input(wildcards):
    """A searched cell's genotype file (its search must have run), or nothing for a published cell."""
    m = plan.SEARCHED_ID.match(wildcards.arch_id)
    if m and m["method"] in protocol.names(PARAMS):
        checkpoints.search.get(method=m["method"], seed=m["seed"])
        return [plan.genotype_ref(wildcards.arch_id)]
    return []


def genotype_of(wildcards):
    """The genotype a training reads: a searched cell's file (its search has run: this job exists only
    after the search checkpoint) or a published cell's name. From the wildcards alone, not `input`:
    Snakemake leaves params that need `input` out of its check for changed params."""
    return plan.genotype_ref(wildcards.arch_id)


def recipe_of(wildcards):
    return plan.recipe_for(PARAMS, wildcards.arch_id, wildcards.dataset, wildcards.stage)


def training_outputs(wildcards=None):
    return [f"{plan.train_dir(a, d, s)}/metrics.json" for a, d, s in plan.training_jobs(PARAMS, searched())]
