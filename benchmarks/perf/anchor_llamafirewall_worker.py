"""Runs inside its own virtualenv with the `llamafirewall` PyPI package (the anchor), never in Purple's.

Two jobs:

    python anchor_llamafirewall_worker.py --make-model DIR --texts FILE
        saves a Prompt-Guard-2-86M-shaped classifier with random weights (mDeBERTa-v3-base: 12 layers, hidden 768,
        the 251k-entry embedding matrix) and a SentencePiece-style unigram tokenizer trained on FILE's texts (one
        per line) into DIR, where LlamaFirewall's PROMPT_GUARD scanner looks for its model.

    python anchor_llamafirewall_worker.py
        serves scan requests, one JSON line in, one out: {"role", "content", "scanners": [...], "reuse": false}
        -> {"decision", "score", "seconds"}. Scanners are LlamaFirewall's names (prompt_guard, hidden_ascii, regex,
        code_shield). By default each request goes through `LlamaFirewall(config).scan(message)` as an app would call
        it (LlamaFirewall builds the scanners inside scan); with "reuse": true the scanner objects are built once
        and only their `scan` is timed (not how LlamaFirewall runs; shows where its time goes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

# This folder holds our own benchmarks, which must not shadow the anchor package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def make_model(folder: Path, texts_file: Path) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import DebertaV2Config, DebertaV2ForSequenceClassification, PreTrainedTokenizerFast

    texts = [line for line in texts_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    specials = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]
    # A SentencePiece-style unigram model, as the real (mDeBERTa) tokenizer is: its cost on long unspaced text, which
    # the scanner's whitespace-attack preprocessing produces, is linear (a BPE model's would not be).
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=32_000, special_tokens=specials, unk_token="[UNK]", show_progress=False
    )
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        unk_token="[UNK]",
        mask_token="[MASK]",
        model_max_length=512,
    )
    torch.manual_seed(0)
    config = DebertaV2Config(
        vocab_size=251_000,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=512,
        relative_attention=True,
        position_buckets=256,
        norm_rel_ebd="layer_norm",
        share_att_key=True,
        pos_att_type=["p2c", "c2p"],
        position_biased_input=False,
        type_vocab_size=0,
        max_relative_positions=-1,
        num_labels=2,
        pad_token_id=0,
        id2label={0: "BENIGN", 1: "MALICIOUS"},
        label2id={"BENIGN": 0, "MALICIOUS": 1},
    )
    model = DebertaV2ForSequenceClassification(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    fast.save_pretrained(folder)


def serve() -> None:
    from llamafirewall import AssistantMessage, LlamaFirewall, Role, ScannerType, UserMessage
    from llamafirewall.llamafirewall import create_scanner

    firewalls: dict[tuple[str, tuple[str, ...]], LlamaFirewall] = {}
    scanners: dict[str, object] = {}
    for line in sys.stdin:
        request = json.loads(line)
        names = tuple(request["scanners"])
        role = Role.USER if request["role"] == "user" else Role.ASSISTANT
        message = (UserMessage if role is Role.USER else AssistantMessage)(content=request["content"])
        if request.get("reuse"):
            found = [scanners.setdefault(n, create_scanner(ScannerType(n))) for n in names]
            start = time.perf_counter()
            results = [asyncio.run(s.scan(message)) for s in found]  # type: ignore[attr-defined]
            seconds = time.perf_counter() - start
            worst = max(results, key=lambda r: (r.decision.value == "block", r.score))
            out = {"decision": worst.decision.value, "score": worst.score, "seconds": seconds}
        else:
            key = (request["role"], names)
            if key not in firewalls:
                firewalls[key] = LlamaFirewall({role: [ScannerType(n) for n in names]})
            start = time.perf_counter()
            result = firewalls[key].scan(message)
            seconds = time.perf_counter() - start
            out = {"decision": result.decision.value, "score": result.score, "seconds": seconds}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--make-model", type=Path)
    parser.add_argument("--texts", type=Path)
    args = parser.parse_args()
    if args.make_model:
        make_model(args.make_model, args.texts)
    else:
        serve()


if __name__ == "__main__":
    main()
