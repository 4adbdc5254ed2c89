"""Write an offline model folder in the shape `SharedEncoder` reads (used by training and by test fixtures).

A folder holds `model.safetensors` (encoder weights under `encoder.`, each head under `heads.<name>.`, big matrices
as int8 + per-row float16 scales), `encoder.onnx` (the encoder's graph, weights read from the safetensors file),
`config.json` (the BERT config of the truncated encoder), `tokenizer.json` and `purple.json` (window, overlap, heads
with their outputs and thresholds, provenance). Writing needs torch and onnx (training); reading needs neither.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from purple.offline.encoder import SCALE_SUFFIX
from purple.offline.graph import write_graph


def quantize_rows(tensor: Any) -> tuple[Any, Any]:
    """(int8 tensor, float16 per-row scale) of a 2-D float tensor: symmetric, one scale per row."""
    import torch

    scale = tensor.abs().amax(dim=1, keepdim=True).clamp(min=1e-8) / 127.0
    return torch.round(tensor / scale).clamp(-127, 127).to(torch.int8), scale.to(torch.float16)


def pack_state(state: dict[str, Any], min_elements: int = 4096) -> dict[str, Any]:
    """A state dict as stored on disk: big 2-D weights as int8 + scales, everything else float16."""
    import torch

    packed: dict[str, Any] = {}
    for name, tensor in state.items():
        tensor = tensor.detach().float().contiguous()
        if tensor.dim() == 2 and tensor.numel() >= min_elements:
            q, scale = quantize_rows(tensor)
            packed[name], packed[name + SCALE_SUFFIX] = q.contiguous(), scale.contiguous()
        else:
            packed[name] = tensor.to(torch.float16)
    return packed


def unpack_state(packed: dict[str, Any]) -> dict[str, Any]:
    """The float32 state dict back from `pack_state`'s form."""
    state: dict[str, Any] = {}
    for name, tensor in packed.items():
        if name.endswith(SCALE_SUFFIX):
            continue
        scale = packed.get(name + SCALE_SUFFIX)
        state[name] = tensor.float() * scale.float() if scale is not None else tensor.float()
    return state


HEAD_TENSORS = ("weight", "bias", "token_weight")
"""A head's tensors: `weight` (outputs, dim) on the vector, `bias` (outputs,), optional `token_weight`
(outputs, vocabulary) on the window's bag of tokens."""


def truncated_encoder(base: str | Path, layers: int) -> tuple[Any, dict[str, Any]]:
    """(BertModel with the first `layers` layers of `base`, its config as a dict). Pretrained weights unchanged."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(base), local_files_only=True, use_safetensors=True)
    if not 1 <= layers <= len(model.encoder.layer):
        raise ValueError(f"layers must be in [1, {len(model.encoder.layer)}], got {layers}")
    model.encoder.layer = model.encoder.layer[:layers]
    model.config.num_hidden_layers = layers
    config = model.config.to_dict()
    for key in ("architectures", "transformers_version", "_name_or_path", "dtype", "torch_dtype"):
        config.pop(key, None)
    config["architectures"] = ["BertModel"]
    return model.eval(), config


def save_model(folder: str | Path, encoder: Any, config: dict[str, Any], tokenizer_json: str | Path,
               heads: dict[str, dict[str, Any]], settings: dict[str, Any]) -> Path:
    """Write the folder. `heads`: name -> {"weight": (outputs, dim) tensor, "bias": (outputs,), "outputs": [names],
    plus any settings such as "threshold"}; `settings`: window, overlap, name, training provenance."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {f"encoder.{k}": v for k, v in encoder.state_dict().items()
             if not k.endswith("position_ids") and not k.startswith("pooler.")}  # mean pooling: no pooler
    head_settings: dict[str, Any] = {}
    for name, head in heads.items():
        weight, bias = head["weight"], head["bias"]
        if weight.dim() != 2 or bias.dim() != 1 or weight.shape[0] != bias.shape[0]:
            raise ValueError(f"head {name}: weight must be (outputs, dim) and bias (outputs,)")
        if len(head["outputs"]) != weight.shape[0]:
            raise ValueError(f"head {name}: {weight.shape[0]} rows but {len(head['outputs'])} output names")
        state[f"heads.{name}.weight"] = weight.float()
        state[f"heads.{name}.bias"] = bias.float()
        if head.get("token_weight") is not None:
            state[f"heads.{name}.token_weight"] = head["token_weight"].float()
        head_settings[name] = {k: v for k, v in head.items() if k not in HEAD_TENSORS}
    packed = pack_state(state)
    for name in heads:  # heads stay float16, not int8 (they are small and their precision matters)
        for part in HEAD_TENSORS:
            key = f"heads.{name}.{part}"
            if key in state:
                packed.pop(key + SCALE_SUFFIX, None)
                packed[key] = state[key].half().contiguous()
    save_file(packed, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tokenizer = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))
    tokenizer["truncation"] = None  # the detectors cut windows themselves; a stored 128-token cut or padding would
    tokenizer["padding"] = None     # silently shorten texts for anyone reading tokenizer.json with `tokenizers`
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False), encoding="utf-8")
    full = {"window": 128, "overlap": 32, **settings, "heads": head_settings}
    (folder / "purple.json").write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")
    write_graph(folder)
    return folder
