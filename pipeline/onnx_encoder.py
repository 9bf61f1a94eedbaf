"""`embed.backend: onnx | onnx-int8`: the sentence-transformers model's transformer run by ONNX
Runtime on CPU, optionally with dynamic int8 quantization of its weights.

sentence-transformers' own ONNX backend needs optimum, which pins an older transformers than
this project's; so the transformer is exported here (torch's TorchScript exporter, present in
the pinned torch) to a temporary folder at each run (seconds), and the model's later modules
(pooling, normalisation, dense layers) run unchanged in torch on its token embeddings.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

TRANSFORMER_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class TokenEmbeddings(torch.nn.Module):
    """The transformer as a function of positional inputs (what the exporter traces)."""

    def __init__(self, transformer: torch.nn.Module, names: list[str]):
        super().__init__()
        self.transformer, self.names = transformer, names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.transformer(**dict(zip(self.names, inputs))).last_hidden_state


def features(encoder, texts: list[str]) -> dict:
    batch = encoder.preprocess(texts)
    return {name: value for name, value in batch.items() if isinstance(value, torch.Tensor)}


def export(encoder, folder: Path, quantized: bool) -> tuple[Path, list[str]]:
    """Writes the transformer of `encoder` to folder/model.onnx (and its int8 version when
    `quantized`: per-channel weights, the setting whose vectors stay closest to the exact ones)."""
    sample = features(encoder, ["an example sentence to trace", "another"])
    names = [name for name in TRANSFORMER_INPUTS if name in sample]
    path = folder / "model.onnx"
    axes = {name: {0: "batch", 1: "tokens"} for name in [*names, "token_embeddings"]}
    module = TokenEmbeddings(encoder[0].auto_model, names).eval()
    # The exporter's warnings (its deprecation, tracing notes on transformers' code) are not the user's to act on.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            tuple(sample[name] for name in names),
            str(path),
            input_names=names,
            output_names=["token_embeddings"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    if quantized:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(path), str(folder / "model_int8.onnx"), weight_type=QuantType.QInt8, per_channel=True)
        path = folder / "model_int8.onnx"
    return path, names


def encode_onnx(encoder, texts: list[str], batch_size: int, quantized: bool, threads: int) -> np.ndarray:
    """Vectors as `encoder.encode` gives them (longest texts first, batch by batch), with the
    transformer in ONNX Runtime."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    with tempfile.TemporaryDirectory(prefix="onnx-encoder-") as folder:
        path, names = export(encoder, Path(folder), quantized)
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    order = np.argsort([-len(text) for text in texts], kind="stable")
    vectors: list[np.ndarray] = [np.empty(0)] * len(texts)
    for start in tqdm(range(0, len(texts), batch_size), desc="Batches", disable=len(texts) <= batch_size):
        rows = order[start : start + batch_size]
        batch = features(encoder, [texts[row] for row in rows])
        (tokens,) = session.run(None, {name: batch[name].numpy() for name in names})
        out = {"token_embeddings": torch.from_numpy(tokens), "attention_mask": batch["attention_mask"]}
        with torch.no_grad():
            for module in list(encoder)[1:]:
                out = module(out)
        for row, vector in zip(rows, out["sentence_embedding"].numpy()):
            vectors[row] = vector
    return np.stack(vectors)
