# Dataset preparation: data/<dataset>.npz from the prepared file, an archive directory or a download.
rule prepare_data:
    output:
        f"{DATA_ROOT}/{{dataset}}.npz",
    log:
        "logs/prepare_data/{dataset}.log",
    shell:
        "{NASFLOW} data prepare {wildcards.dataset} {SETTINGS} > {log} 2>&1"
