import copy

import pytest

from pipeline.config import coerce_command_line_strings, default_config, reference_errors, schema_errors
from pipeline.schema import deep_merge

CONFIG = default_config()


def test_the_shipped_config_is_valid():
    assert schema_errors(CONFIG) == [] and reference_errors(CONFIG) == []


def test_command_line_strings_become_the_types_the_schema_wants():
    config = copy.deepcopy(CONFIG)
    config["train"].update(max_epochs="3", lr="1e-4", seeds="[1, 2]")
    config["model"]["causal"] = "false"
    config["datasets"]["ml100k"]["item_prompt"] = "42"  # a string field stays a string
    coerce_command_line_strings(config)
    assert config["train"]["max_epochs"] == 3 and config["train"]["lr"] == 1e-4 and config["train"]["seeds"] == [1, 2]
    assert config["model"]["causal"] is False and config["datasets"]["ml100k"]["item_prompt"] == "42"
    assert schema_errors(config) == []


def test_every_error_is_listed_with_its_key():
    config = copy.deepcopy(CONFIG)
    config["train"]["lr"] = "fast"
    config["model"]["llmesr"]["id_init"] = "zeros"
    config["datasets"]["Bad-Name"] = {"format": "csv"}
    coerce_command_line_strings(config)
    errors = "\n".join(schema_errors(config))
    assert "train.lr: 'fast' is not of type 'number'" in errors
    assert "model.llmesr.id_init: 'zeros' is not one of ['pca', 'random']" in errors
    assert (
        "'Bad-Name' does not match" in errors
        and "'csv' is not one of ['recbole', 'sequences', 'llmesr', 'amazon2014'" in errors
    )


def test_a_format_needs_its_path_keys():
    config = copy.deepcopy(CONFIG)
    config["datasets"]["mine"] = {"format": "sequences", "sequences": "s.txt"}
    assert [e for e in schema_errors(config) if "mine" in e] == [
        "datasets.mine: format sequences needs sequences, items; missing: items"
    ]


def test_an_entry_without_a_format_gets_one_line_saying_what_it_needs():
    config = copy.deepcopy(CONFIG)
    config["datasets"]["beauty"] = {"ts_user": 5}  # a partial override of a default dataset
    [error] = schema_errors(config, default_datasets=frozenset({"beauty"}))
    assert error.startswith("datasets.beauty: no 'format'; give one of recbole, sequences,")
    assert "sequences: sequences, items" in error and "replaces the default 'beauty' as a whole" in error


def test_duplicate_seeds_are_refused():
    config = copy.deepcopy(CONFIG)
    config["train"]["seeds"] = [42, 42]
    assert schema_errors(config) == ["train.seeds: [42, 42] has non-unique elements"]


@pytest.mark.parametrize(
    "target, message",
    [
        ("results/ml100k_sasrec_bse_metrics.json", "no variant 'bse' is configured (llmesr, base,"),
        ("results/ml10k_sasrec_metrics.json", "no dataset 'ml10k' is configured (ml100k, yelp, fashion, beauty)"),
        ("results/tables/beuaty.md", "no dataset 'beuaty'"),
        ("results/plots/ml100k_sasrec_lmesr_seed42_training.png", "no variant 'lmesr'"),
        ("results/ml100k/runs/gru4rec_nosdd_seed43/model.pt", "no variant 'nosdd'"),
    ],
)
def test_a_target_naming_an_unknown_dataset_or_variant_is_one_line(target, message):
    from pipeline.config import target_errors

    assert [e.removeprefix(f"{target}: ") for e in target_errors([target], CONFIG)][0].startswith(message)


def test_known_targets_pass():
    from pipeline.config import target_errors

    targets = [
        "results/ml100k_sasrec_metrics.json",
        "results/ml100k_gru4rec_authors_metrics.json",
        "all",
        "results/tables/ml100k.md",
        "results/ml100k/embed/items.npy",
        "results/logs/x.log",
        "results/plots/ml100k_groups.png",
        "results/ml100k_stats.json",
    ]
    assert target_errors(targets, CONFIG) == []


def test_cuda_asked_for_on_a_machine_without_it(monkeypatch):
    import torch

    from pipeline.config import device_errors

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = copy.deepcopy(CONFIG)
    config["train"]["device"] = "cuda:1"
    [error] = device_errors(config)
    assert error.startswith("train.device cuda:1 was asked for, but this machine has no CUDA device")
    assert device_errors(CONFIG) == []  # auto


def test_a_model_folder_that_cannot_load_is_refused_at_start_up(tmp_path):
    import json

    from pipeline.datasets import DataError
    from pipeline.embed import resolve_model

    (tmp_path / "modules.json").write_text("{}")
    with pytest.raises(DataError, match="not a list of modules"):
        resolve_model(str(tmp_path))
    (tmp_path / "modules.json").write_text(
        json.dumps([{"path": "", "type": "sentence_transformers.models.Transformer"}])
    )
    with pytest.raises(DataError, match="config.json .* cannot be read"):
        resolve_model(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(DataError, match="no weights"):
        resolve_model(str(tmp_path))
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert resolve_model(str(tmp_path)) == tmp_path


def test_targets_and_variants_are_cross_checked():
    config = copy.deepcopy(CONFIG)
    config["targets"]["datasets"] = ["nope"]
    config["variants"]["mine"] = {"llmesr": {"alpah": 1}}
    errors = "\n".join(reference_errors(config))
    assert "targets.datasets: 'nope' is not configured" in errors
    assert "variants.mine.llmesr: Additional properties are not allowed ('alpah' was unexpected)" in errors


def test_the_breadth_reference_is_a_variant_and_needs_gammas():
    config = copy.deepcopy(CONFIG)
    config["eval"]["popularity_breadth_of"] = "basec"
    errors = reference_errors(config)
    assert any(e.startswith("eval.popularity_breadth_of: no variant 'basec' (variants: ") for e in errors)
    assert "eval.popularity_breadth_of chooses among eval.popularity_gammas: give some, e.g. [0, 0.1, 0.3]" in errors
    config["eval"].update(popularity_breadth_of="basece", popularity_gammas=[0, 0.5])
    assert not any("popularity_breadth_of" in e for e in reference_errors(config))


def test_a_variant_s_train_options_are_checked_as_train():
    config = copy.deepcopy(CONFIG)
    config["variants"]["mine"] = {"train": {"loss": "cee", "negativs": 2}}
    config["variants"]["seeded"] = {"train": {"seed": 7}}
    config["variants"]["fine"] = {"llmesr": {"alpha": 0.5}, "train": {"loss": "gbce", "negatives": 256}}
    config["variants"]["gpu"] = {"train": {"device": "cuda"}}
    config["variants"]["citiesce"] = {"method": "cities", "train": {"loss": "ce", "max_epochs": 5}}
    config["variants"]["hardce"] = {"train": {"loss": "ce", "hard_negatives": 0.5}}
    config["variants"]["popbce"] = {"train": {"negatives_from": "popularity"}}
    config["variants"]["sparsewd"] = {"train": {"sparse_embeddings": True, "weight_decay": 0.01}}
    config["variants"]["autowd"] = {"train": {"sparse_embeddings": "auto", "weight_decay": 0.01}}
    errors = reference_errors(config)
    assert not any(error.startswith("variants.autowd") for error in errors)  # auto stays off instead
    assert (
        "variants.sparsewd: train.sparse_embeddings steps the embedding tables with LazyAdam, which has no weight "
        "decay: set weight_decay to 0 (not 0.01) or sparse_embeddings to false" in errors
    )
    assert (
        "variants.hardce: train.hard_negatives 0.5 replaces per-target negatives: use loss bce, gbce, infonce, not ce"
        in errors
    )
    assert (
        "variants.popbce: train.negatives_from 'popularity' draws sampled_softmax's shared negatives: use loss "
        "sampled_softmax, not bce" in errors
    )
    assert "variants.mine.train.loss: 'cee' is not one of ['bce', 'gbce', 'sampled_softmax', 'infonce', 'ce']" in errors
    assert "variants.mine.train: Additional properties are not allowed ('negativs' was unexpected)" in errors
    assert any(e.startswith("variants.seeded.train.seed: a variant cannot set the seed") for e in errors)
    assert any(e.startswith("variants.gpu.train.device: the device is the machine's") for e in errors)
    assert any(e.startswith("variants.citiesce.train: CITIES' stage") and e.endswith("not loss") for e in errors)
    assert not [e for e in errors if e.startswith("variants.fine")]


def test_strings_inside_a_variant_become_the_types_the_schema_wants():
    config = copy.deepcopy(CONFIG)
    config["variants"]["slow"] = {
        "llmesr": {"alpha": "0.5"},
        "dropout": "0.2",
        "train": {"lr": "1e-4", "negatives": "256"},
    }
    coerce_command_line_strings(config)
    assert config["variants"]["slow"] == {
        "llmesr": {"alpha": 0.5},
        "dropout": 0.2,
        "train": {"lr": 1e-4, "negatives": 256},
    }
    assert reference_errors(config) == []


def test_deep_merge_overrides_leaves_only():
    merged = deep_merge({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"c": 5}})
    assert merged == {"a": {"b": 1, "c": 5}, "d": 3}


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda c: c["targets"].update(backbones=["transformer"]),
            "targets.backbones.0: 'transformer' is not one of ['sasrec', 'gru4rec', 'bert4rec']",
        ),
        (lambda c: c["train"].update(lr=-0.1), "train.lr: -0.1 is less than or equal to the minimum of 0"),
        (lambda c: c["train"].update(batch_size=0), "train.batch_size: 0 is less than the minimum of 1"),
        (lambda c: c["model"].update(dropout="lots"), "model.dropout: 'lots' is not of type 'number'"),
        (
            lambda c: c["datasets"]["ml100k"].update(ts_user="high"),
            "datasets.ml100k.ts_user: 'high' is not of type 'integer'",
        ),
        (lambda c: c["datasets"]["ml100k"].update(format="csv"), "datasets.ml100k.format: 'csv' is not one of"),
    ],
)
def test_config_errors_name_the_key_and_the_allowed_values(change, message):
    config = copy.deepcopy(CONFIG)
    change(config)
    assert any(e.startswith(message) for e in schema_errors(config)), schema_errors(config)


def test_unknown_variant_and_missing_model_path(tmp_path):
    config = copy.deepcopy(CONFIG)
    config["targets"]["variants"] = ["base", "nosuch"]
    config["embed"]["model"] = str(tmp_path / "no-model-here")
    errors = "\n".join(reference_errors(config))
    assert "targets.variants: 'nosuch' is not configured under variants (llmesr, base," in errors
    assert f"embed.model: {tmp_path / 'no-model-here'} is not a loadable sentence-transformers model folder" in errors


def test_the_configuration_reference_is_generated_and_current():
    from pipeline.docs import DOC, render

    text = render()
    assert DOC.read_text() == text, "docs/configuration.md is stale: run `python -m pipeline docs`"
    for key in ("train.select_on", "model.llmesr.alpha", "model.cities.window", "retrieve.exact_max_users"):
        assert f"| `{key}` |" in text


def test_command_line_strings_inside_lists_alternatives_and_choices_are_converted():
    config = copy.deepcopy(CONFIG)
    config["eval"]["k"] = ["5", "10"]  # --config eval='{k: [5, 10]}': k is a number or a list of them
    config["model"]["llmesr"]["adapter_layers"] = "1"  # one of the choices 1, 2
    config["train"]["sparse_embeddings"] = "false"  # one of auto, true, false
    config["variants"]["mine"] = {"train": {"sparse_embeddings": "true"}}
    coerce_command_line_strings(config)
    assert config["eval"]["k"] == [5, 10] and config["model"]["llmesr"]["adapter_layers"] == 1
    assert config["train"]["sparse_embeddings"] is False
    assert config["variants"]["mine"]["train"]["sparse_embeddings"] is True
    assert schema_errors(config) == []
    config["train"]["sparse_embeddings"] = "auto"
    coerce_command_line_strings(config)
    assert config["train"]["sparse_embeddings"] == "auto" and schema_errors(config) == []
