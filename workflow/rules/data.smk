# Dataset preparation: data/<dataset>.npz from the prepared file, an archive directory or a download.
rule prepare_data:
    output:
        f"{DATA_ROOT}/{{dataset}}.npz",
    params:
        inputs=lambda w: jobs.as_rule_params(jobs.data_inputs(PARAMS["data"], w.dataset)),
    log:
        "logs/prepare_data/{dataset}.log",
    resources:
        runtime=PARAMS["runtime"]["minutes"]["prepare_data"],
    shell:
        "{NASFLOW} data prepare {wildcards.dataset} {SETTINGS} > {log} 2>&1"


rule all_data:
    input:
        [f"{DATA_ROOT}/{name}.npz" for name in STUDY.prepared_datasets()],
