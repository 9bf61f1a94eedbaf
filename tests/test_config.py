import copy

import pytest

import yaml

from conftest import REPO
from pipeline.config import coerce_command_line_strings, deep_merge, reference_errors, schema_errors

CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())


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
    assert "'Bad-Name' does not match" in errors and "'csv' is not one of ['recbole', 'sequences', 'llmesr', 'amazon2014'" in errors


def test_a_format_needs_its_path_keys():
    config = copy.deepcopy(CONFIG)
    config["datasets"]["mine"] = {"format": "sequences", "sequences": "s.txt"}
    assert any("datasets.mine: 'items' is a required property" in e for e in schema_errors(config))


def test_targets_and_variants_are_cross_checked():
    config = copy.deepcopy(CONFIG)
    config["targets"]["datasets"] = ["nope"]
    config["variants"]["mine"] = {"llmesr": {"alpah": 1}}
    errors = "\n".join(reference_errors(config))
    assert "targets.datasets: 'nope' is not configured" in errors
    assert "variants.mine.llmesr: Additional properties are not allowed ('alpah' was unexpected)" in errors


def test_deep_merge_overrides_leaves_only():
    merged = deep_merge({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"c": 5}})
    assert merged == {"a": {"b": 1, "c": 5}, "d": 3}


@pytest.mark.parametrize("change, message", [
    (lambda c: c["targets"].update(backbones=["transformer"]), "targets.backbones.0: 'transformer' is not one of ['sasrec', 'gru4rec', 'bert4rec']"),
    (lambda c: c["train"].update(lr=-0.1), "train.lr: -0.1 is less than or equal to the minimum of 0"),
    (lambda c: c["train"].update(batch_size=0), "train.batch_size: 0 is less than the minimum of 1"),
    (lambda c: c["model"].update(dropout="lots"), "model.dropout: 'lots' is not of type 'number'"),
    (lambda c: c["datasets"]["ml100k"].update(ts_user="high"), "datasets.ml100k.ts_user: 'high' is not of type 'integer'"),
    (lambda c: c["datasets"]["ml100k"].update(format="csv"), "datasets.ml100k.format: 'csv' is not one of"),
])
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
    assert f"embed.model: {tmp_path / 'no-model-here'} is not a local sentence-transformers model folder" in errors
