rule import_bundle:
    """The authors' released embeddings, PCA vectors and similar users, in place of the
    embed, pca and retrieve stages (for datasets of format llmesr_bundle)."""
    input:
        unpack(raw_inputs),
        item_table="results/{dataset}/ingest/items.parquet",
        user_table="results/{dataset}/ingest/users.parquet",
    output:
        llm_items="results/{dataset}/embed/items.npy",
        llm_users="results/{dataset}/embed/users.npy",
        items_meta="results/{dataset}/embed/items.json",
        users_meta="results/{dataset}/embed/users.json",
        pca_items="results/{dataset}/pca/items.npy",
        neighbours="results/{dataset}/retrieve/neighbours.npy",
        retrieve_report="results/{dataset}/retrieve/report.json",
    log:
        "results/logs/{dataset}/import_bundle.log",
    wildcard_constraints:
        dataset=BUNDLED_DATASET,
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        folder=lambda w: dataset_spec(w.dataset)["dir"],
        hidden_size=config["model"]["hidden_size"],
    shell:
        "python -m pipeline bundle import --dir {params.folder:q} --items {input.item_table} --users {input.user_table}"
        " --hidden-size {params.hidden_size} --out-llm-items {output.llm_items} --out-llm-users {output.llm_users}"
        " --out-pca-items {output.pca_items} --out-neighbours {output.neighbours} --out-items-meta {output.items_meta}"
        " --out-users-meta {output.users_meta} --out-retrieve-report {output.retrieve_report} > {log} 2>&1"


rule export_bundle:
    """Any dataset's artifacts in the authors' layout, so their code runs on our embeddings:
    `snakemake results/{dataset}/llmesr_bundle/inter.txt`."""
    input:
        interactions="results/{dataset}/ingest/interactions.parquet",
        llm_items="results/{dataset}/embed/items.npy",
        llm_users="results/{dataset}/embed/users.npy",
        pca_items="results/{dataset}/pca/items.npy",
        neighbours="results/{dataset}/retrieve/neighbours.npy",
    output:
        inter="results/{dataset}/llmesr_bundle/inter.txt",
        llm_items="results/{dataset}/llmesr_bundle/itm_emb_np.pkl",
        llm_users="results/{dataset}/llmesr_bundle/usr_emb_np.pkl",
        pca_items="results/{dataset}/llmesr_bundle/pca64_itm_emb_np.pkl",
        neighbours="results/{dataset}/llmesr_bundle/sim_user_100.pkl",
    log:
        "results/logs/{dataset}/export_bundle.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    shell:
        "python -m pipeline bundle export --interactions {input.interactions} --llm-items {input.llm_items}"
        " --llm-users {input.llm_users} --pca-items {input.pca_items} --neighbours {input.neighbours}"
        " --out-dir $(dirname {output.inter}) > {log} 2>&1"
