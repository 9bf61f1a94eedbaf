"""The offline encoder, its identity, and the embedding cache."""

import numpy as np
import pytest

from pipeline.datasets import DataError
from pipeline.embed import encode_cached, model_identity, resolve_model

TEXTS = ["The movie has following attributes: name is Kolya.", "A quiet documentary about bees.", "Space opera."]


def test_default_encoder_is_the_packaged_model_and_has_an_identity():
    identity = model_identity("default")
    assert resolve_model("default").joinpath("modules.json").is_file()
    assert identity["weights_file"] == "model.safetensors" and len(identity["weights_sha256"]) == 64
    assert model_identity(identity["path"])["identity"] == identity["identity"]  # same files, same identity


def test_a_model_path_that_is_not_a_model_is_refused(tmp_path):
    with pytest.raises(
        DataError, match="not a loadable sentence-transformers model folder .neither modules.json nor config.json"
    ):
        resolve_model(str(tmp_path))


def test_cache_encodes_only_new_texts_and_returns_the_same_vectors(tmp_path):
    first, record = encode_cached(TEXTS, "default", 8, "cpu", tmp_path)
    assert record["encoded"] == 3 and first.shape == (3, 384) and first.dtype == np.float32
    again, record = encode_cached(TEXTS, "default", 8, "cpu", tmp_path)
    assert record["encoded"] == 0 and record["from_cache"] == 3
    np.testing.assert_array_equal(again, first)
    changed = TEXTS[:2] + ["Space opera, director's cut."]
    vectors, record = encode_cached(changed, "default", 8, "cpu", tmp_path)
    assert record["encoded"] == 1
    np.testing.assert_array_equal(vectors[:2], first[:2])
    uncached, _ = encode_cached(changed, "default", 8, "cpu", None)
    np.testing.assert_allclose(vectors, uncached, atol=1e-5)


def test_shards_cover_every_row_once():
    from pipeline.embed import shard_bounds

    bounds = [shard_bounds(10, i, 3) for i in range(3)]
    assert bounds == [(0, 3), (3, 6), (6, 10)]
    with pytest.raises(ValueError):
        shard_bounds(10, 3, 3)


def test_sharded_embedding_equals_the_unsharded_one(tmp_path):
    import polars as pl

    from pipeline.embed import main as embed_main
    from pipeline.embed import merge_main

    texts = [
        f"The item has following attributes: name is product number {i}; brand is {'x' * (i % 7)}." for i in range(23)
    ]
    pl.DataFrame({"item": list(range(1, 24)), "text": texts}).write_parquet(tmp_path / "prompts.parquet")
    embed_main(
        [
            "--prompts",
            str(tmp_path / "prompts.parquet"),
            "--out",
            str(tmp_path / "all.npy"),
            "--meta",
            str(tmp_path / "all.json"),
            "--device",
            "cpu",
            "--model",
            "default",
            "--batch-size",
            "64",
            "--shard",
            "0",
            "--shards",
            "1",
        ]
    )
    shards = []
    for shard in range(3):
        out = tmp_path / f"shard_{shard}.npy"
        embed_main(
            [
                "--prompts",
                str(tmp_path / "prompts.parquet"),
                "--out",
                str(out),
                "--meta",
                str(out.with_suffix(".json")),
                "--device",
                "cpu",
                "--shard",
                str(shard),
                "--shards",
                "3",
                "--batch-size",
                "4",
                "--model",
                "default",
            ]
        )
        shards.append(str(out))
    merge_main([*shards, "--out", str(tmp_path / "merged.npy"), "--meta", str(tmp_path / "merged.json")])
    merged, whole = np.load(tmp_path / "merged.npy"), np.load(tmp_path / "all.npy")
    assert merged.shape == whole.shape == (23, 384)
    assert np.abs(merged - whole).max() < 1e-5
