"""Tables and plots from fixture metrics: the files exist, PNGs decode, and every number in
the tables equals the JSON it came from."""

import csv
import json

import matplotlib.image
import numpy as np
import pytest

from pipeline.models import variant_role, variant_title
from pipeline.plots import group_bars, training_curves
from pipeline.tables import main as tables_main

from conftest import CONFIG

GROUPS = ("overall", "tail_item", "head_item", "tail_user", "head_user")


def fixture_metrics(backbone, variant, offset):
    def groups(scale):
        return {
            g: {
                "n": 10,
                "HR@10": round(scale * (0.30 + 0.01 * i + offset), 4),
                "NDCG@10": round(scale * (0.15 + 0.01 * i + offset), 4),
            }
            for i, g in enumerate(GROUPS)
        }

    std = {g: {"HR@10": 0.01, "NDCG@10": 0.005} for g in GROUPS}
    title = variant_title(variant, CONFIG["variants"][variant], CONFIG["model"])
    role = variant_role(CONFIG["variants"][variant], CONFIG["model"])
    return {
        "dataset": "yelp",
        "backbone": backbone,
        "variant": variant,
        "title": title,
        "role": role,
        "seed": [42, 43],
        "seeds": [42, 43],
        "thresholds": {"ts_user": 12, "ts_item": 13},
        "groups": groups(1.0),
        "std": std,
        "full_ranking": {"groups": groups(0.1), "std": std, "excluded": "history"},
    }


@pytest.fixture
def metrics_files(tmp_path):
    paths = []
    for backbone, base_offset in (("sasrec", 0.0), ("gru4rec", -0.05)):
        for variant, offset in (("base", 0.0), ("llmesr", 0.02), ("noca", 0.01)):
            path = tmp_path / f"{backbone}_{variant}.json"
            path.write_text(json.dumps(fixture_metrics(backbone, variant, base_offset + offset)))
            paths.append(path)
    return paths


def test_table1_numbers_equal_the_json(tmp_path, metrics_files):
    md, table = tmp_path / "yelp.md", tmp_path / "yelp.csv"
    tables_main(
        [
            *map(str, metrics_files),
            "--dataset",
            "yelp",
            "--backbones",
            "sasrec",
            "gru4rec",
            "--embedder",
            "test-encoder",
            "--out-md",
            str(md),
            "--out-csv",
            str(table),
        ]
    )
    rows = list(csv.DictReader(table.open()))
    assert [(r["protocol"], r["backbone"], r["model"]) for r in rows][:3] == [
        ("sampled", "sasrec", "base"),
        ("sampled", "sasrec", "llmesr"),
        ("sampled", "sasrec", "improvement_%"),
    ]
    by_key = {(r["protocol"], r["backbone"], r["model"]): r for r in rows}
    for path in metrics_files:
        result = json.loads(path.read_text())
        if result["variant"] == "noca":
            continue
        for protocol, groups in (("sampled", result["groups"]), ("full", result["full_ranking"]["groups"])):
            row = by_key[protocol, result["backbone"], result["variant"]]
            for group in GROUPS:
                for metric in ("HR@10", "NDCG@10"):
                    assert float(row[f"{group} {metric}"]) == groups[group][metric]
                    assert float(row[f"{group} {metric} std"]) == (0.01 if metric == "HR@10" else 0.005)
    base = json.loads(metrics_files[0].read_text())["groups"]["overall"]["HR@10"]
    ours = json.loads(metrics_files[1].read_text())["groups"]["overall"]["HR@10"]
    assert float(by_key["sampled", "sasrec", "improvement_%"]["overall HR@10"]) == pytest.approx(
        100 * (ours - base) / base
    )
    text = md.read_text()
    assert f"{ours:.4f} ± 0.0100" in text and "test-encoder" in text
    assert "Published in the paper" in text and "0.6673" in text and "text-embedding-ada-002" in text


def test_ablation_table(tmp_path, metrics_files):
    md, table = tmp_path / "ablation.md", tmp_path / "ablation.csv"
    tables_main(
        [
            *map(str, metrics_files),
            "--dataset",
            "yelp",
            "--backbones",
            "sasrec",
            "--variants",
            "llmesr",
            "noca",
            "--embedder",
            "e",
            "--out-ablation-md",
            str(md),
            "--out-ablation-csv",
            str(table),
        ]
    )
    rows = list(csv.DictReader(table.open()))
    assert [(r["backbone"], r["model"]) for r in rows if r["protocol"] == "sampled"] == [
        ("sasrec", "llmesr"),
        ("sasrec", "noca"),
    ]
    noca = json.loads(metrics_files[2].read_text())
    assert float(rows[1]["overall NDCG@10"]) == noca["groups"]["overall"]["NDCG@10"]
    assert "w/o CA" in md.read_text() and "0.6644 / 0.4160" in md.read_text()


def test_ranking_table_shows_how_each_run_trained_and_what_it_recommends(tmp_path, metrics_files):
    from pipeline.plots import ranking

    results = [json.loads(p.read_text()) for p in metrics_files[:2]]
    ce = fixture_metrics("sasrec", "ce", 0.03)
    for result, train, coverage in (
        (results[0], {}, 0.84),
        (results[1], {"loss": "bce", "negatives": 1}, 0.6),
        (ce, {"loss": "ce", "negatives": 1, "select_on": "full"}, 0.91),
    ):
        result["record"] = {"config": {"train": train}}
        result["full_ranking"]["groups"]["overall"].update({"coverage@10": coverage, "tail_share@10": coverage / 3})
    paths = []
    for result in (*results, ce):
        paths.append(tmp_path / f"{result['variant']}.json")
        paths[-1].write_text(json.dumps(result))
    md, table = tmp_path / "ranking.md", tmp_path / "ranking.csv"
    tables_main(
        [
            *map(str, paths),
            "--dataset",
            "yelp",
            "--backbones",
            "sasrec",
            "--variants",
            "base",
            "llmesr",
            "ce",
            "--embedder",
            "e",
            "--out-ranking-md",
            str(md),
            "--out-ranking-csv",
            str(table),
        ]
    )
    rows = list(csv.DictReader(table.open()))
    assert [(r["protocol"], r["model"]) for r in rows] == [
        (p, m) for p in ("sampled", "full") for m in ("base", "llmesr", "ce")
    ]
    full_ce = rows[5]
    assert float(full_ce["overall NDCG@10"]) == ce["full_ranking"]["groups"]["overall"]["NDCG@10"]
    assert (full_ce["loss"], full_ce["select_on"], float(full_ce["full coverage@10"])) == ("ce", "full", 0.91)
    # a run recorded before the options existed trained with their defaults
    assert (rows[0]["loss"], rows[0]["negatives"], rows[0]["select_on"], rows[0]["gbce_t"]) == (
        "bce",
        "1",
        "sampled",
        "",
    )
    text = md.read_text()
    assert "| SASRec | LLM-ESR, CE | ce | all items | validation NDCG@10, full | 0.910 | 0.303 |" in text
    ranking([*results, ce], "yelp sasrec", tmp_path / "ranking.png")
    assert matplotlib.image.imread(tmp_path / "ranking.png").shape[2] in (3, 4)


def test_plots_decode(tmp_path, metrics_files):
    group_bars([json.loads(p.read_text()) for p in metrics_files], tmp_path / "groups.png")
    assert matplotlib.image.imread(tmp_path / "groups.png").shape[2] in (3, 4)
    history = {
        "best_epoch": 2,
        "epochs": [
            {
                "epoch": e,
                "loss": 1 / e,
                "rec_loss": 0.9 / e,
                "distill_loss": 0.1 / e,
                "valid_HR@10": 0.1 * e,
                "valid_NDCG@10": 0.05 * e,
            }
            for e in (1, 2, 3)
        ],
    }
    training_curves(history, "run", tmp_path / "curve.png")
    image = matplotlib.image.imread(tmp_path / "curve.png")
    assert image.shape[0] > 100 and image.shape[1] > 300


def test_group_analysis_bins_cover_every_value_once():
    from pipeline.plots import bin_edges, binned

    values = np.array([1, 1, 2, 3, 3, 3, 5, 8, 13, 40])
    edges = bin_edges(values, 3)
    index, labels = binned(values, edges)
    assert len(labels) == len(edges) - 1 and index.min() == 0 and index.max() == len(labels) - 1
    for i, value in zip(index, values):  # each value inside its bin's label range
        low, _, high = labels[i].partition("-")
        assert int(low) <= value <= int(high or low)
    assert binned(np.array([7, 7, 7]), bin_edges(np.array([7, 7, 7]), 5))[1] == ["7"]
