"""The method registry: a new method is one module in pipeline/models/ and nothing else. A toy
method written by this test into a copy of the repository builds, trains through the workflow
and appears in Table 1 as a competitor; a variant with an unknown role stops the run at start-up."""

import csv
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import REPO, ml100k_folder, ml100k_slice, run_snakemake

pytestmark = pytest.mark.slow

# One module: a typed config that is also its schema section, how it is built over any backbone,
# a training term, and the artifacts it reads. Its table role (competitor) is Method's default.
TOY = """
from dataclasses import dataclass

from ..options import option
from .method import BuildInputs, Method
from .recommender import SequentialRecommender
from .terms import TrainingTerm


@dataclass(frozen=True)
class ToyConfig:
    weight: float = option(0.01, "Weight of the penalty on the item vectors' squared norm.", minimum=0)


class Penalty(TrainingTerm):
    name = "penalty"

    def __init__(self, weight):
        self.weight = weight

    def loss(self, model, micro, prepared):
        return (model.item_vectors(micro.inputs[micro.inputs > 0]) ** 2).mean()


def build(config: ToyConfig, inputs: BuildInputs) -> SequentialRecommender:
    return SequentialRecommender(inputs.encoder(), inputs.n_items, **inputs.common)


METHOD = Method("toy", "Toy", build, ToyConfig, needs=lambda config: {"stats"},
                terms=lambda config, data: [Penalty(config.weight)], order=60)
"""


def copy_of_repository(folder):
    """The workflow's files (not the venv, results or tests) in `folder`."""
    folder.mkdir()
    for name in ("Snakefile", "config.yaml", "pyproject.toml"):
        shutil.copy(REPO / name, folder / name)
    for name in ("rules", "pipeline", "envs", "profiles"):
        shutil.copytree(REPO / name, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def test_a_method_is_one_module_and_joins_table1_as_a_competitor(tmp_path):
    repo = copy_of_repository(tmp_path / "repo")
    (repo / "pipeline" / "models" / "toy.py").write_text(TOY)
    work = tmp_path / "work"
    work.mkdir()
    ml100k_slice(work / "mini.inter", users=20)
    config = {
        "targets": {"datasets": ["mini"], "backbones": ["sasrec"], "variants": ["base", "llmesr", "toy"]},
        "variants": {"toy": {"method": "toy", "toy": {"weight": 0.05}}},
        "model": {"max_len": 20, "hidden_size": 16},
        "train": {"max_epochs": 1, "seeds": [42]},
        "eval": {"negatives": 20},
        "retrieve": {"k": 5, "recall_sample": 20},
        "datasets": {
            "mini": {
                "format": "recbole",
                "inter": "mini.inter",
                "item": str(ml100k_folder() / "ml-100k.item"),
                "item_prompt": "The movie: {movie_title}; genres are {class}.",
                "user_item_column": "movie_title",
                "min_item_interactions": 1,
            }
        },
    }
    (work / "c.yaml").write_text(yaml.safe_dump(config))
    run_snakemake(
        work, "--cores", "2", "results/tables/mini.md", "--configfile", "c.yaml", snakefile=repo / "Snakefile"
    )

    history = (work / "results" / "mini" / "runs" / "sasrec_toy_seed42" / "history.json").read_text()
    assert '"penalty_loss"' in history  # its training term ran in the loop
    metrics = yaml.safe_load((work / "results" / "mini_sasrec_toy_metrics.json").read_text())
    assert (metrics["title"], metrics["role"]) == ("Toy", "competitor")
    assert metrics["record"]["config"]["model"]["toy"] == {"weight": 0.05}  # its schema section, default filled
    rows = [(r["protocol"], r["model"]) for r in csv.DictReader((work / "results" / "tables" / "mini.csv").open())]
    assert rows[:5] == [
        ("sampled", "base"),
        ("sampled", "toy"),
        ("sampled", "llmesr"),
        ("sampled", "improvement_%"),
        ("sampled", "improvement_best_%"),
    ]
    assert "| SASRec | Toy |" in (work / "results" / "tables" / "mini.md").read_text()


def test_an_unknown_role_stops_the_run_before_any_job(tmp_path):
    (tmp_path / "c.yaml").write_text(
        yaml.safe_dump({"variants": {"odd": {"role": "sidekick", "llmesr": {"alpha": 0.2}}}})
    )
    result = run_snakemake(tmp_path, "--cores", "1", "-n", "--configfile", "c.yaml", check=False)
    assert result.returncode != 0
    assert (
        "variants.odd.role: 'sidekick' is not one of ['competitor', 'ablation', 'training', 'authors']" in result.stderr
    )
    assert "Traceback" not in result.stderr and not (tmp_path / "results").exists()


def test_the_packaged_methods_are_found_by_the_registry():
    listed = subprocess.run(
        [sys.executable, "-c", "from pipeline.models import METHODS; print(sorted(METHODS))"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    ).stdout
    assert listed.strip() == str(sorted(["base", "llmesr", "llminit", "cities", "melt", "rlmrec", "alphafuse"]))
