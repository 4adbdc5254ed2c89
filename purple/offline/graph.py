"""The encoder's ONNX graph, whose weights stay in `model.safetensors`.

`write_graph(folder)` writes `encoder.onnx` next to a model folder's `model.safetensors`: a BERT encoder with mean
pooling (inputs `input_ids`, `attention_mask`; output `pooled`) in which every weight is ONNX external data pointing
at that tensor's bytes inside the safetensors file (its header gives each tensor's offsets). The weights therefore
exist once, in safetensors; the graph holds only structure. int8 matrices run as onnxruntime's
`DynamicQuantizeMatMul` (int8 weights, one scale per output row, activations quantised on the fly); the float16
tensors and the embedding tables are converted once, when onnxruntime folds constants at load.

The graph records a hash of the safetensors header (names, dtypes, shapes, offsets); `SharedEncoder` refuses a graph
written for another file layout. Writing needs the `onnx` package (training and tests); running needs only
onnxruntime.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from purple.offline.encoder import GRAPH_FILE, HEADER_KEY, SCALE_SUFFIX, WEIGHTS_FILE, read_header

OPSET = 17


def write_graph(folder: str | Path) -> Path:
    """Write `encoder.onnx` for the model folder's config.json and model.safetensors; returns its path."""
    try:
        from onnx import TensorProto, helper
    except ImportError:
        raise RuntimeError("writing the encoder graph needs the onnx package: pip install -e '.[train]'") from None

    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    entries, data_start, header_sha = read_header(folder / WEIGHTS_FILE)
    dtypes = {"I8": TensorProto.INT8, "F16": TensorProto.FLOAT16, "F32": TensorProto.FLOAT}
    nodes: list[Any] = []
    initializers: list[Any] = []
    stored_names: set[str] = set()
    counter = iter(range(1_000_000))

    def fresh(hint: str) -> str:
        return f"{hint}_{next(counter)}"

    def node(op: str, inputs: list[str], hint: str, domain: str = "", **attrs: Any) -> str:
        out = fresh(hint)
        nodes.append(helper.make_node(op, inputs, [out], domain=domain or None, **attrs))
        return out

    def const(values: list[int] | list[float], dtype: int = TensorProto.INT64) -> str:
        name = fresh("const")
        initializers.append(helper.make_tensor(name, dtype, [len(values)], values))
        return name

    def stored(name: str) -> str:
        """A safetensors tensor as an external-data initializer named like the tensor."""
        if name in stored_names:
            return name
        entry = entries.get(name)
        if entry is None:
            raise ValueError(f"{folder / WEIGHTS_FILE} has no tensor {name!r}")
        begin, end = entry["data_offsets"]
        tensor = TensorProto()
        tensor.name, tensor.data_type = name, dtypes[entry["dtype"]]
        tensor.dims.extend(entry["shape"])
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (("location", WEIGHTS_FILE), ("offset", str(data_start + begin)),
                           ("length", str(end - begin))):
            item = tensor.external_data.add()
            item.key, item.value = key, value
        stored_names.add(name)
        initializers.append(tensor)
        return name

    def as_float(name: str) -> str:
        """A stored tensor in float32 (int8 rows times their scales, or float16 widened)."""
        value = node("Cast", [stored(name)], "float", to=TensorProto.FLOAT)
        if name + SCALE_SUFFIX in entries:
            scale = node("Cast", [stored(name + SCALE_SUFFIX)], "scale", to=TensorProto.FLOAT)
            value = node("Mul", [value, scale], "dequant")
        return value

    def linear(x: str, prefix: str) -> str:
        weight, bias = f"{prefix}.weight", f"{prefix}.bias"
        bias_f = node("Cast", [stored(bias)], "bias", to=TensorProto.FLOAT)
        if weight + SCALE_SUFFIX in entries:  # int8 rows: quantised matmul with one scale per output
            b = node("Transpose", [stored(weight)], "wt", perm=[1, 0])
            scale = node("Reshape", [node("Cast", [stored(weight + SCALE_SUFFIX)], "scale", to=TensorProto.FLOAT),
                                     const([-1])], "scale_flat")
            return node("DynamicQuantizeMatMul", [x, b, scale, "", bias_f], "qlinear", domain="com.microsoft")
        product = node("MatMul", [x, node("Transpose", [as_float(weight)], "wt", perm=[1, 0])], "matmul")
        return node("Add", [product, bias_f], "linear")

    def layer_norm(x: str, prefix: str, skip: str | None = None) -> str:
        """LayerNorm of x, or of x + skip (the residual)."""
        if skip is not None:
            x = node("Add", [x, skip], "residual")
        return node("LayerNormalization", [x, as_float(f"{prefix}.weight"), as_float(f"{prefix}.bias")], "ln",
                    axis=-1, epsilon=float(config.get("layer_norm_eps", 1e-12)))

    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    if config.get("hidden_act", "gelu") != "gelu" or hidden % heads:
        raise ValueError("the graph writer handles BERT encoders with gelu and hidden_size divisible by heads")

    # embeddings: words + positions + token type 0, then LayerNorm
    prefix = "encoder.embeddings"
    words = node("Gather", [as_float(f"{prefix}.word_embeddings.weight"), "input_ids"], "words")
    length = node("Gather", [node("Shape", ["input_ids"], "shape"), const([1])], "length")
    positions = node("Range", [node("Constant", [], "zero", value=helper.make_tensor("z", TensorProto.INT64, [], [0])),
                               node("Squeeze", [length], "len"),
                               node("Constant", [], "one", value=helper.make_tensor("o", TensorProto.INT64, [], [1]))],
                     "positions")
    position_vectors = node("Gather", [as_float(f"{prefix}.position_embeddings.weight"), positions], "pos")
    type_vector = node("Gather", [as_float(f"{prefix}.token_type_embeddings.weight"), const([0])], "type")
    x = node("Add", [node("Add", [words, position_vectors], "sum"), type_vector], "sum")
    x = layer_norm(x, f"{prefix}.LayerNorm")

    # padding: (batch, length) int32, 1 for tokens and 0 for padding, as MultiHeadAttention's key padding mask
    key_mask = node("Cast", ["attention_mask"], "key_mask", to=TensorProto.INT32)
    mask = node("Cast", ["attention_mask"], "maskf", to=TensorProto.FLOAT)

    for index in range(int(config["num_hidden_layers"])):
        prefix = f"encoder.encoder.layer.{index}"

        q, k, v = (linear(x, f"{prefix}.attention.self.{part}") for part in ("query", "key", "value"))
        context = node("MultiHeadAttention", [q, k, v, "", key_mask], "context", domain="com.microsoft",
                       num_heads=heads)
        attended = linear(context, f"{prefix}.attention.output.dense")
        x = layer_norm(attended, f"{prefix}.attention.output.LayerNorm", skip=x)
        inner = node("Gelu", [linear(x, f"{prefix}.intermediate.dense")], "gelu", domain="com.microsoft")
        x = layer_norm(linear(inner, f"{prefix}.output.dense"), f"{prefix}.output.LayerNorm", skip=x)

    # mean pooling over real tokens
    weights = node("Unsqueeze", [mask, const([-1])], "weights")
    total = node("ReduceSum", [node("Mul", [x, weights], "masked"), const([1])], "total", keepdims=0)
    count = node("ReduceSum", [weights, const([1])], "count", keepdims=0)
    nodes.append(helper.make_node("Div", [total, count], ["pooled"]))

    graph = helper.make_graph(
        nodes, "purple_encoder",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "length"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "length"])],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["batch", hidden])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET),
                                                    helper.make_opsetid("com.microsoft", 1)],
                              producer_name="purple.offline.graph")
    model.ir_version = 8
    helper.set_model_props(model, {HEADER_KEY: header_sha})
    path = folder / GRAPH_FILE
    path.write_bytes(model.SerializeToString())
    return path
