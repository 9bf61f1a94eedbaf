"""The offline encoder, its identity, and the embedding cache."""

import numpy as np
import pytest

from pipeline import embed as embed_module
from pipeline.datasets import DataError
from pipeline.embed import CPU_BF16_PROBES, encode, encode_cached, model_identity, resolve_model

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


def test_the_onnx_backend_gives_the_torch_vectors_in_order_and_int8_close_ones(tmp_path):
    texts = [*TEXTS, "A much longer prompt: " + "lipstick, mascara and a little shampoo; " * 12]
    exact, record = encode_cached(texts, "default", 2, "cpu", tmp_path)  # batches of 2: padding and order matter
    onnx, onnx_record = encode_cached(texts, "default", 2, "cpu", tmp_path, backend="onnx")
    int8, int8_record = encode_cached(texts, "default", 2, "cpu", tmp_path, backend="onnx-int8")
    assert onnx_record["encoded"] == int8_record["encoded"] == 4  # nothing taken from another backend's cache
    assert len({r["encoder"]["identity"] for r in (record, onnx_record, int8_record)}) == 3
    assert record["encoder"]["identity"] == model_identity("default")["identity"]  # torch's is unchanged
    np.testing.assert_allclose(onnx, exact, atol=1e-5)
    cosine = (int8 * exact).sum(1) / np.linalg.norm(int8, axis=1) / np.linalg.norm(exact, axis=1)
    assert cosine.min() > 0.95 and np.abs(int8 - exact).max() > 1e-3  # close, and truly quantized
    assert (np.argmax(int8 @ exact.T, axis=1) == np.arange(4)).all()  # each text still nearest its own vector


def test_an_onnx_backend_on_cuda_or_without_its_packages_is_refused(monkeypatch):
    import importlib.util

    from pipeline.config import backend_errors

    assert (
        backend_errors({"backend": "torch", "device": "cuda"})
        == backend_errors({"backend": "torch-bf16", "device": "cuda"})
        == []
    )
    assert backend_errors({"backend": "onnx", "device": "auto"}) == []
    [error] = backend_errors({"backend": "onnx-int8", "device": "cuda:0"})
    assert error == "embed.backend: onnx-int8 runs on CPU; with embed.device cuda:0 use backend torch"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    [error] = backend_errors({"backend": "onnx", "device": "cpu"})
    assert error.startswith("embed.backend: onnx needs onnxruntime and onnx, not installed here: pip install")


def test_the_bf16_backend_gives_close_vectors_of_its_own_and_the_same_each_time(tmp_path):
    texts = [*TEXTS, "A much longer prompt: " + "lipstick, mascara and a little shampoo; " * 12]
    exact, record = encode_cached(texts, "default", 2, "cpu", tmp_path)
    bf16, bf16_record = encode_cached(texts, "default", 2, "cpu", tmp_path, backend="torch-bf16")
    # Uncached, the same texts in another order: sentence-transformers sorts by length, so the batches are the same.
    again = encode(texts[::-1], "default", 2, "cpu", "torch-bf16")[::-1]
    assert bf16_record["encoded"] == 4 and bf16_record["encoder"]["identity"] != record["encoder"]["identity"]
    assert np.array_equal(bf16, again)  # deterministic, as the exact path is
    cosine = (bf16 * exact).sum(1) / np.linalg.norm(bf16, axis=1) / np.linalg.norm(exact, axis=1)
    assert cosine.min() > 0.999 and np.abs(bf16 - exact).max() > 1e-5  # close, and truly bfloat16 products


def test_bf16_warns_where_the_hardware_lacks_it(monkeypatch, caplog):
    import torch

    assert any(hasattr(torch.cpu, name) for name in CPU_BF16_PROBES)  # the private probes of this torch
    monkeypatch.setattr(embed_module, "bf16_emulated", lambda device: True)
    encode(TEXTS[:1], "default", 2, "cpu", "torch-bf16")
    assert "torch-bf16 on cpu, which reports no bfloat16 hardware" in caplog.text
    caplog.clear()
    encode(TEXTS[:1], "default", 2, "cpu", "torch")
    assert "bfloat16" not in caplog.text
