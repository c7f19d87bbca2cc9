"""An int8 ONNX Runtime copy of a sentence-transformers model: on a 2-core CPU questions embed ~5x and
passages ~2.6x faster than with the float model (docs/benchmarks.md).

Built locally from the model folder (no download): the transformer is exported to ONNX, its graph fused for
BERT-style attention, and its MatMul weights quantised to int8 per output channel, which keeps cosine
agreement with the float model above 0.99 (bench/embedding.py measures it). Pooling and normalisation are
done here with numpy, the way the model's own sentence-transformers modules do them.

sentence-transformers' own ONNX backend needs `optimum`, whose releases require transformers < 5; this
module needs only `onnx` and `onnxruntime`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kb.errors import KnowledgeBaseError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)

ONNX_FILE = "model_int8.onnx"
#: Beside the graph: weights of 64 MB or more (the word-embedding table, 384 MB of floats that int8 leaves
#: whole). ONNX Runtime maps this file instead of reading it, so a process holds only the rows its texts use.
TABLE_FILE = "model_int8.tables"
TABLE_MIN_BYTES = 64 * 2**20
BUILD_FILE = "kb_onnx_build.json"
#: Bump when the export or quantisation recipe changes, so old builds are redone.
RECIPE = "onnx-int8-v2"  # v2: large tables in TABLE_FILE
#: Names the vectors this backend makes (part of the model id that indexes and the vector cache record);
#: bump when encoding changes them. v2: one text per run.
VECTORS_ID = "onnx-int8-v2"


def load_tokenizer(model_dir: Path, max_tokens: int) -> Tokenizer:
    """The model's tokenizer, set up as the encoder uses it: ~290 MB in memory for the default model's 250k-word
    vocabulary, so the passage graph and the tuned question graph (same vocabulary) share one."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(max_tokens)
    tokenizer.no_padding()
    return tokenizer


class OnnxBuildError(KnowledgeBaseError):
    """The model could not be exported or quantised for ONNX Runtime."""


def onnx_dir_for(model_dir: Path, fingerprint: str) -> Path:
    """Beside the model folder (inside it would change the model's fingerprint)."""
    return model_dir.parent / f"{model_dir.name}-{RECIPE}-{fingerprint}"


def _pooling_mode(model_dir: Path) -> str:
    modules = json.loads((model_dir / "modules.json").read_text(encoding="utf-8"))
    pooling = next((m for m in modules if m["type"].endswith("Pooling")), None)
    if pooling is None:
        return "mean"
    config = json.loads((model_dir / pooling["path"] / "config.json").read_text(encoding="utf-8"))
    if config.get("pooling_mode") in ("mean", "cls"):
        return config["pooling_mode"]
    if config.get("pooling_mode_mean_tokens"):
        return "mean"
    if config.get("pooling_mode_cls_token"):
        return "cls"
    raise OnnxBuildError(f"the ONNX backend supports mean or CLS pooling only, not {config}")


def build_onnx_int8(model_dir: Path, target: Path) -> Path:
    """Export + fuse + quantise the model's transformer into `target` (atomically); returns the folder."""
    if (target / BUILD_FILE).is_file():
        return target
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer
    from transformers import AutoConfig, AutoModel

    log.warning("正在生成 int8 ONNX 模型（一次性，约 1 分钟）: %s", target)
    config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
    model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()

    class LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".onnx-build-", dir=target.parent))
    try:
        names = ["input_ids", "attention_mask", "token_type_ids"]
        dynamic = {name: {0: "batch", 1: "tokens"} for name in [*names, "last_hidden_state"]}
        example = torch.ones(2, 8, dtype=torch.long)
        with torch.no_grad():
            torch.onnx.export(LastHiddenState(), (example, example, torch.zeros_like(example)),
                              str(work / "float.onnx"), input_names=names, output_names=["last_hidden_state"],
                              dynamic_axes=dynamic, opset_version=17, dynamo=False)
        fused = optimizer.optimize_model(str(work / "float.onnx"), model_type="bert", opt_level=1,
                                         num_heads=config.num_attention_heads, hidden_size=config.hidden_size)
        fused.save_model_to_file(str(work / "fused.onnx"))
        import onnx

        quantize_dynamic(str(work / "fused.onnx"), str(work / ONNX_FILE), weight_type=QuantType.QInt8,
                         per_channel=True, op_types_to_quantize=["MatMul"],
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        for leftover in ("float.onnx", "fused.onnx"):
            (work / leftover).unlink()
        for extra in work.glob("*.data"):
            extra.unlink()
        quantised = onnx.load(str(work / ONNX_FILE))
        onnx.save_model(quantised, str(work / ONNX_FILE), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=TABLE_FILE, size_threshold=TABLE_MIN_BYTES)
        (work / BUILD_FILE).write_text(json.dumps({"recipe": RECIPE, "source": str(model_dir)}), encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        os.replace(work, target)
    except Exception as exc:
        shutil.rmtree(work, ignore_errors=True)
        raise OnnxBuildError(f"could not build the int8 ONNX model from {model_dir}: {exc}") from exc
    return target


class OnnxInt8Encoder:
    """Tokenise with the model's tokenizer.json, run the int8 graph, pool and normalise like the model does."""

    def __init__(self, model_dir: Path, onnx_dir: Path, threads: int, max_tokens: int,
                 tokenizer: Tokenizer | None = None) -> None:
        """`tokenizer`: the model's, already loaded (load_tokenizer), instead of a copy of its own."""
        import onnxruntime as ort

        self.pooling = _pooling_mode(model_dir)
        self.tokenizer = tokenizer or load_tokenizer(model_dir, max_tokens)
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(onnx_dir / ONNX_FILE), options, providers=["CPUExecutionProvider"])

    def encode(self, texts: Sequence[str], batch_size: int = 1) -> np.ndarray:
        """One text per run, whatever `batch_size` says: dynamic int8 quantises activations over the whole
        input, so a text embedded beside others would come out slightly different (cosine ~0.997) from the
        same text alone; one at a time it is always the same, and on a CPU it is also the fastest (no
        padding: 23 vs 14 passages/s at batch 32, measured)."""
        out = np.zeros((len(texts), 0), dtype=np.float32)
        for row, encoding in enumerate(self.tokenizer.encode_batch(list(texts))):
            ids = np.asarray([encoding.ids], dtype=np.int64)
            mask = np.ones_like(ids)
            hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask,
                                             "token_type_ids": np.zeros_like(ids)})[0][0]
            pooled = hidden[0] if self.pooling == "cls" else hidden.mean(axis=0)
            if out.shape[1] == 0:
                out = np.zeros((len(texts), pooled.shape[0]), dtype=np.float32)
            out[row] = pooled / max(float(np.linalg.norm(pooled)), 1e-12)
        return out
