"""A tiny deterministic sentence encoder for the tests: no extra, no model files.

Words are hashed into 32 signed buckets, so texts that share words point the same way, as a
real encoder's vectors of related texts do. It counts the texts it encodes."""

from __future__ import annotations

import hashlib

import numpy as np

from faqtune.features.encoder import unit_rows

DIM = 32


class HashingEncoder:
    identity = "hashing-32"

    def __init__(self) -> None:
        self.encoded = 0

    def encode(self, texts, threads: int = 0) -> np.ndarray:
        self.encoded += len(texts)
        out = np.zeros((len(texts), DIM))
        for i, text in enumerate(texts):
            for word in text.lower().split():
                h = int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "little")
                out[i, h % DIM] += 1.0 if h & 1 << 20 else -1.0
            out[i, -1] += 0.01  # no zero rows
        return unit_rows(out)
