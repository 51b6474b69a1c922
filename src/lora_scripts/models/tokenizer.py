"""CLIP tokenizer built offline from the BPE merges shipped in assets/ (no hub download at run time)."""

from __future__ import annotations

import gzip
import json
import os
import secrets
from functools import lru_cache
from pathlib import Path

from transformers import CLIPTokenizer

BPE_FILE = Path(__file__).parent / "assets" / "clip" / "bpe_simple_vocab_16e6.txt.gz"
VOCAB_SIZE = 49408


def cache_dir() -> Path:
    root = os.environ.get("LORA_SCRIPTS_CACHE") or Path.home() / ".cache" / "lora-scripts"
    return Path(root)


def _bytes_to_unicode() -> list[str]:
    # GPT-2/CLIP byte-level alphabet, in CLIP's order (the order fixes the token ids).
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def write_tokenizer_files(folder: Path) -> Path:
    """Write vocab.json + merges.txt exactly as openai/clip-vit-large-patch14 ships them."""
    folder.mkdir(parents=True, exist_ok=True)
    merges = gzip.open(BPE_FILE).read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    alphabet = _bytes_to_unicode()
    tokens = alphabet + [t + "</w>" for t in alphabet] + ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    config = {"model_max_length": 77, "tokenizer_class": "CLIPTokenizer", "do_lower_case": True}
    # vocab.json last: its presence says the folder is complete. Every file goes through its own temp name,
    # so processes building the cache at once (--processes N, Ray workers on a fresh node) never read a half
    # file or rename each other's temp away; they write the same bytes.
    _write_atomic(folder / "merges.txt", "#version: 0.2\n" + "\n".join(merges) + "\n")
    _write_atomic(folder / "tokenizer_config.json", json.dumps(config))
    _write_atomic(folder / "vocab.json", json.dumps(vocab, ensure_ascii=False))
    return folder


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


@lru_cache(maxsize=4)
def clip_tokenizer(pad_token: str = "<|endoftext|>") -> CLIPTokenizer:
    """SD1 pads with <|endoftext|>, SD2 (OpenCLIP) with '!'."""
    folder = cache_dir() / "clip_tokenizer"
    if not (folder / "vocab.json").is_file() or not (folder / "merges.txt").is_file():
        write_tokenizer_files(folder)
    # from_pretrained on a local folder reads the files the same way in transformers 4 and 5.
    return CLIPTokenizer.from_pretrained(
        str(folder), pad_token=pad_token, model_max_length=77, local_files_only=True
    )
