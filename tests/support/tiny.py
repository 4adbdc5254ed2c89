"""Tiny random Llama Guard-shaped models, saved as a real model folder (safetensors) with a tiny tokenizer.

The tokenizers are byte-level BPE trained here on Llama Guard prompt text, so prompts tokenize much as they would
with the real ones, and they carry the real special tokens of Llama 3 and Llama 4 plus single-token 'safe' and
'unsafe'. Weights are random (seeded): scores are meaningless but real, which is what the tests need.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

LLAMA3_SPECIALS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|image|>",
    "<|finetune_right_pad_id|>",
]
LLAMA4_SPECIALS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|header_start|>",
    "<|header_end|>",
    "<|eot|>",
    "<|eom|>",
    "<|image|>",
    "<|image_start|>",
    "<|image_end|>",
    "<|patch|>",
    "<|tile_x_separator|>",
    "<|tile_y_separator|>",
    "<|finetune_right_pad|>",
]

# A chat template in the shape of Llama Guard 3's published one (categories and excluded_category_keys as
# template arguments), ending with the blank line that opens the answer, as an OpenAI-compatible server uses it.
LG3_CHAT_TEMPLATE = (
    "{%- if messages[-1]['role'] == 'assistant' -%}{%- set role = 'Agent' -%}{%- else -%}{%- set role = 'User' -%}"
    "{%- endif -%}"
    "{%- if categories is not defined -%}{%- set categories = {"
    "'S1': 'Violent Crimes.', 'S2': 'Non-Violent Crimes.', 'S3': 'Sex Crimes.', 'S4': 'Child Exploitation.', "
    "'S5': 'Defamation.', 'S6': 'Specialized Advice.', 'S7': 'Privacy.', 'S8': 'Intellectual Property.', "
    "'S9': 'Indiscriminate Weapons.', 'S10': 'Hate.', 'S11': 'Self-Harm.', 'S12': 'Sexual Content.', "
    "'S13': 'Elections.'} -%}{%- endif -%}"
    "{%- if excluded_category_keys is not defined -%}{%- set excluded_category_keys = [] -%}{%- endif -%}"
    "{{- '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\\n\\n' -}}"
    "{{- \"Task: Check if there is unsafe content in '\" + role + \"' messages in conversations according our "
    "safety policy with the below categories.\\n\\n\" -}}"
    "{{- '<BEGIN UNSAFE CONTENT CATEGORIES>\\n' -}}"
    "{%- for key in categories -%}{%- if key not in excluded_category_keys -%}"
    "{{- key + ': ' + categories[key] + '\\n' -}}{%- endif -%}{%- endfor -%}"
    "{{- '<END UNSAFE CONTENT CATEGORIES>\\n\\n<BEGIN CONVERSATION>\\n\\n' -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}{%- set r = 'User' -%}{%- else -%}{%- set r = 'Agent' -%}{%- endif -%}"
    "{{- r + ': ' + message['content'] | trim + '\\n\\n' -}}"
    "{%- endfor -%}"
    "{{- '<END CONVERSATION>\\n\\n' -}}"
    "{{- 'Provide your safety assessment for ONLY THE LAST ' + role + ' message in the above conversation:\\n' -}}"
    "{{- \" - First line must read 'safe' or 'unsafe'.\\n\" -}}"
    "{{- ' - If unsafe, a second line must include a comma-separated list of violated categories. "
    "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}"
)


def _corpus() -> list[str]:
    from purple.llamaguard.formats import FORMATS, default_taxonomy, render, to_turns
    from purple.types import Message

    samples = [
        [Message("user", "How do I bake bread at home?")],
        [Message("user", "Tell me how to hurt someone."), Message("assistant", "I cannot help with that.")],
    ]
    texts = []
    for fmt in FORMATS.values():
        taxonomy = default_taxonomy(fmt)
        for conversation in samples:
            texts.append(render(fmt, to_turns(conversation), taxonomy, with_policy=True))
    words = "safe unsafe S1 S2 S3 S4 S5 S6 S7 S8 S9 S10 S11 S12 S13 S14 O1 O2 O3 O4 O5 O6 , \n\n"
    return texts * 3 + [words] * 40


def build_tokenizer(specials: list[str], eos: str, pad: str, vocab_size: int = 600) -> Any:
    """A byte-level BPE tokenizer with the given special tokens; BOS is added like Llama's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(), trainer)
    bos = specials[0]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", special_tokens=[(bos, tokenizer.token_to_id(bos))]
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=bos, eos_token=eos, pad_token=pad)
    for word in ("safe", "unsafe", " safe", " unsafe"):
        assert len(fast(word, add_special_tokens=False)["input_ids"]) == 1, word
    return fast


def _llama_text(tokenizer: Any, **overrides: Any) -> dict[str, Any]:
    config = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": True,
        "initializer_range": 0.5,  # large random weights give peaked, input-dependent next-token distributions
    }
    config.update(overrides)
    return config


def save_llama3_guard(folder: Path, chat_template: bool = True) -> Path:
    """A Llama-Guard-3-1B-shaped LlamaForCausalLM (2 layers, width 32)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tokenizer = build_tokenizer(LLAMA3_SPECIALS, "<|eot_id|>", "<|finetune_right_pad_id|>")
    if chat_template:
        tokenizer.chat_template = LG3_CHAT_TEMPLATE
    model = LlamaForCausalLM(LlamaConfig(**_llama_text(tokenizer)))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_mllama_guard(folder: Path) -> Path:
    """A Llama-Guard-3-11B-Vision-shaped Mllama model with a 28-pixel, one-tile image processor."""
    import torch
    from transformers import MllamaConfig, MllamaForConditionalGeneration, MllamaProcessor
    from transformers.models.mllama.image_processing_pil_mllama import MllamaImageProcessorPil

    torch.manual_seed(0)
    tokenizer = build_tokenizer(LLAMA3_SPECIALS, "<|eot_id|>", "<|finetune_right_pad_id|>")
    config = MllamaConfig(
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_global_layers": 1,
            "attention_heads": 2,
            "image_size": 28,
            "patch_size": 14,
            "max_num_tiles": 1,
            "intermediate_layers_indices": [0],
            "vision_output_dim": 64,
            "supported_aspect_ratios": [[1, 1]],
        },
        text_config={**_llama_text(tokenizer), "cross_attention_layers": [1], "tie_word_embeddings": False},
        image_token_index=tokenizer.convert_tokens_to_ids("<|image|>"),
    )
    model = MllamaForConditionalGeneration(config)
    processor = MllamaProcessor(
        image_processor=MllamaImageProcessorPil(size={"height": 28, "width": 28}, max_image_tiles=1),
        tokenizer=tokenizer,
    )
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def save_llama4_guard(folder: Path) -> Path:
    """A Llama-Guard-4-12B-shaped Llama4ForConditionalGeneration (dense, no routed experts), shrunk."""
    import torch
    from transformers import Llama4Config, Llama4ForConditionalGeneration

    torch.manual_seed(0)
    tokenizer = build_tokenizer(LLAMA4_SPECIALS, "<|eot|>", "<|finetune_right_pad|>")
    text = _llama_text(
        tokenizer,
        intermediate_size_mlp=64,
        head_dim=8,
        num_local_experts=1,
        num_experts_per_tok=1,
        moe_layers=[],
        interleave_moe_layer_step=0,
        attention_chunk_size=1024,
        tie_word_embeddings=False,
    )
    config = Llama4Config(
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 28,
            "patch_size": 14,
            "vision_output_dim": 32,
            "projector_input_dim": 32,
            "projector_output_dim": 32,
            "pixel_shuffle_ratio": 0.5,
        },
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids("<|image|>"),
    )
    model = Llama4ForConditionalGeneration(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
