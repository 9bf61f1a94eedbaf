"""What a careless newcomer, an attacker or an unlucky operator meets: each case here once went
wrong without a word (or with a traceback) and now stops with a message, or is handled."""

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from pipeline.config import reference_errors
from pipeline.datasets import DataError, read_dataset, with_defaults
from pipeline.datasets.authors_bundle import load_array
from pipeline.embed import EmbeddingCache
from pipeline.evaluate import check_options
from pipeline.ingest import canonicalise, check_item_text, drop_summary
from pipeline.models import build_model
from pipeline.models.method import Artifacts
from pipeline.pca import pca_reduce
from pipeline.train import train, without_saturated_users

from conftest import CONFIG, N_ITEMS, REPO, model_options, train_options, user_sequences


def ingest(tmp_path, sequences: str, items: str) -> dict:
    (tmp_path / "s.txt").write_bytes(sequences.encode())
    (tmp_path / "i.tsv").write_text(items)
    spec = with_defaults(
        {"format": "sequences", "sequences": str(tmp_path / "s.txt"), "items": str(tmp_path / "i.tsv")}
    )
    return canonicalise(read_dataset(spec), 1, 1, 3)


SEQUENCES = "".join(f"u{n} 1 2 3 {4 + n % 3}\n" for n in range(6))


def test_item_ids_that_match_no_item_row_stop_ingestion_with_examples_of_both(tmp_path):
    _, _, _, report = ingest(tmp_path, SEQUENCES, "item_id\ttitle\n01\tA\n02\tB\n3 \tC\n")  # written differently
    assert report["items_without_text_row"] == 6
    with pytest.raises(DataError, match="6 of 6 items .* no row in the item table") as raised:
        check_item_text(report, 0.01, "s.txt, i.tsv")
    assert "'1', '2', '3'" in str(raised.value) and "'01', '02', '3 '" in str(raised.value)


def test_a_few_items_without_text_are_reported_not_fatal(tmp_path):
    items = "item_id\ttitle\n" + "".join(f"{n}\tItem {n}\n" for n in range(1, 6))  # item 6 has no row
    _, _, _, report = ingest(tmp_path, SEQUENCES, items)
    check_item_text(report, 0.2, "files")  # 1 of 6 is below 20%
    assert any(line.startswith("1 of 6 items have no row in the item table") for line in drop_summary(report))


def test_identical_or_broken_item_embeddings_are_refused_before_pca():
    with pytest.raises(DataError, match="all 5 item embeddings are identical"):
        pca_reduce(np.ones((5, 8), np.float32), 2)
    with pytest.raises(DataError, match="NaN or infinite"):
        pca_reduce(np.full((5, 8), np.nan, np.float32), 2)


def test_a_byte_order_mark_is_not_part_of_the_first_user(tmp_path):
    _, _, users, _ = ingest(tmp_path, "\ufeff" + SEQUENCES, "item_id\ttitle\n1\tA\n")
    assert users["original_id"][0] == "u0"


def test_a_missing_relative_path_is_shown_absolute_with_the_rule(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = with_defaults({"format": "sequences", "sequences": "data/s.txt", "items": "data/i.tsv"})
    with pytest.raises(DataError, match="relative paths are resolved from the working directory") as raised:
        read_dataset(spec)
    assert str(tmp_path / "data" / "s.txt") in str(raised.value)


def test_a_run_trained_with_other_options_is_not_reported_under_new_ones(tmp_path):
    history = {"options": {"model": {"hidden_size": 64}, "train": {"max_epochs": 3, "lr": 0.001}}}
    record = {"model": {"hidden_size": 64}, "train": {"max_epochs": 2, "lr": 0.001}}
    with pytest.raises(DataError, match="train.max_epochs: trained 3, asked 2"):
        check_options(tmp_path / "run" / "history.json", history, record)
    check_options(tmp_path / "run" / "history.json", history, {**record, "train": {"max_epochs": 3, "lr": 0.001}})


def test_an_option_added_after_a_run_was_trained_counts_as_its_default_there(tmp_path):
    history = {"options": {"model": {"hidden_size": 64}, "train": {"lr": 0.001}}}  # before sparse_embeddings
    record = {"model": {"hidden_size": 64}, "train": {"lr": 0.001, "sparse_embeddings": "auto"}}
    check_options(tmp_path / "run" / "history.json", history, record)
    with pytest.raises(DataError, match="train.sparse_embeddings: trained 'auto', asked True"):
        check_options(
            tmp_path / "run" / "history.json", history, {**record, "train": {"lr": 0.001, "sparse_embeddings": True}}
        )


def test_the_embedding_cache_ignores_unfinished_and_names_corrupt_shards(tmp_path, caplog):
    cache = EmbeddingCache(tmp_path, "enc")
    cache.add(["a", "b"], np.array([[1.0, 2.0], [3.0, 4.0]], np.float32))
    (cache.folder / ".0123.tmp999.npz").write_bytes(b"PK\x03\x04 half a zip")  # killed while writing
    (cache.folder / "ffff.npz").write_bytes(b"not a zip at all")  # damaged on disk
    found = cache.load({"a", "c"})  # only what is asked for
    assert list(found) == ["a"] and found["a"].tolist() == [1.0, 2.0]
    assert "ffff.npz" in caplog.text and ".0123" not in caplog.text


def test_a_pickle_that_repeats_one_row_is_refused_before_it_is_built(tmp_path):
    path = tmp_path / "itm_emb_np.pkl"
    row = [0.25] * 64
    path.write_bytes(pickle.dumps([row] * 50_000))  # ~100 KB on disk, 25 MB as an array
    with pytest.raises(DataError, match="would expand to 3200000 numbers"):
        load_array(path)
    path.write_bytes(pickle.dumps(np.arange(12.0).reshape(3, 4)))
    assert load_array(path).shape == (3, 4)


def test_users_who_have_trained_on_nearly_or_every_item_do_not_stop_training():
    from pipeline.data import sample_negatives

    seqs = user_sequences(n_users=6, length=8)

    def with_seventh_user(items):  # its last two items are validation and test, the rest trains
        return type(seqs)(
            np.concatenate([seqs.items, items]), np.append(seqs.offsets, seqs.offsets[-1] + len(items)), N_ITEMS
        )

    every = with_seventh_user(np.r_[np.arange(1, N_ITEMS + 1), 1, 2])  # has trained on every item
    assert 6 not in without_saturated_users(np.arange(7), every, every.membership_keys(2))
    almost = with_seventh_user(np.r_[np.arange(2, N_ITEMS + 1), 2, 3])  # on every item but item 1
    drawn = sample_negatives(np.random.default_rng(0), np.array([6] * 50), (50,), N_ITEMS, almost.membership_keys(2))
    assert set(drawn.tolist()) == {1}  # the one item that user has not trained on
    candidates = np.concatenate([every.targets(np.arange(7), 2)[:, None], np.ones((7, 3), np.int64)], axis=1)
    _, history = train(
        "sasrec", model_options(llmesr=False), train_options(max_epochs=1), every, candidates, torch.device("cpu")
    )
    assert history["epochs_run"] == 1


@pytest.mark.parametrize(
    "key, section, value",
    [
        ("sasrec.num_heads", "sasrec", {"num_heads": 3}),
        ("bert4rec.num_heads", "bert4rec", {"num_heads": 5}),
        ("llmesr.cross_attention_heads", "llmesr", {"cross_attention_heads": 6}),
    ],
)
def test_heads_that_do_not_divide_the_hidden_size_are_refused_at_start_up(key, section, value):
    config = json.loads(json.dumps(CONFIG))
    config["model"][section].update(value)
    errors = reference_errors(config)
    heads = list(value.values())[0]
    assert f"model.{key} is {heads}, which does not divide model.hidden_size 64: use one of 1, 2, 4, 8, 16" in errors[0]


def test_melt_fine_tunes_the_plain_backbone_by_default():
    seqs = user_sequences(n_users=12, length=8)
    candidates = np.concatenate([seqs.targets(np.arange(12), 2)[:, None], np.ones((12, 3), np.int64)], axis=1)
    torch.manual_seed(5)
    base = build_model("sasrec", model_options(llmesr=False), N_ITEMS).state_dict()
    options = model_options(method="melt")
    stats = {"ts_user": 5, "ts_item": 3}
    for from_base in (True, False):
        options["melt"] = {**CONFIG["model"]["melt"], "from_base": from_base}
        # lr 0: Adam does not move the weights, so the result is where training started
        state, _ = train(
            "sasrec",
            options,
            train_options(max_epochs=1, lr=0.0),
            seqs,
            candidates,
            torch.device("cpu"),
            Artifacts(stats=stats, base=base if from_base else None),
        )
        # (MELT rewrites the tail items' rows at the start of every epoch: the encoder shows where it started)
        starts_from_base = all(torch.equal(state[k], v) for k, v in base.items() if k.startswith("encoder."))
        assert starts_from_base == from_base
    with pytest.raises(ValueError, match="MELT starts from the trained plain backbone"):
        options["melt"]["from_base"] = True
        train(
            "sasrec",
            options,
            train_options(max_epochs=1),
            seqs,
            candidates,
            torch.device("cpu"),
            Artifacts(stats=stats),
        )


def test_a_disk_fault_is_one_line_with_the_path_and_no_traceback(tmp_path):
    np.save(tmp_path / "e.npy", np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32))
    (tmp_path / "results").write_text("a file where the results folder should be")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "pca",
            "--embeddings",
            str(tmp_path / "e.npy"),
            "--out-pca",
            str(tmp_path / "results" / "items.npy"),
            "--dims",
            "4",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {tmp_path / 'results' / 'items.npy'}: ") and "a file stands where a folder" in last


def test_a_pickle_that_contains_itself_is_refused_with_a_message(tmp_path):
    looped = [[0.5, 0.25]]
    looped.append(looped)
    (tmp_path / "loop.pkl").write_bytes(pickle.dumps(looped))
    with pytest.raises(DataError, match="nested too deep, or containing themselves"):
        load_array(tmp_path / "loop.pkl")
