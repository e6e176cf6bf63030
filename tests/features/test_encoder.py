"""The sentence encoder (`faqtune.features.encoder`): the embedding cache, the files' checks,
and the real all-MiniLM-L6-v2 where the semantic extra is installed."""

from __future__ import annotations

import hashlib
import pickle
import shutil

import numpy as np
import pytest

from faqtune.errors import ConfigError
from faqtune.features import encoder as enc
from tests.features.fake_encoder import HashingEncoder
from tests.helpers import needs_semantic

TEXTS = ["how do I prove a language is regular", "show that a language is not regular",
         "what is the time complexity of quicksort"]


def test_each_distinct_text_is_encoded_once_and_a_second_run_reads_the_cache(tmp_path):
    encoder = HashingEncoder()
    texts = TEXTS + TEXTS[:2]
    first = enc.embed(encoder, texts, str(tmp_path))
    assert encoder.encoded == 3
    assert np.array_equal(first[3:], first[:2])
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-5)

    again = HashingEncoder()  # another trial, another process: the same folder
    second = enc.embed(again, ["a text never seen", *TEXTS], str(tmp_path))
    assert again.encoded == 1
    assert np.array_equal(second[1:], first[:3])
    shards = list((tmp_path / "embeddings" / encoder.identity).iterdir())
    assert len(shards) == 2 and all(p.suffix == ".npz" for p in shards)  # no temporary left


def test_without_a_cache_folder_nothing_is_written_and_every_call_encodes(tmp_path):
    encoder = HashingEncoder()
    enc.embed(encoder, TEXTS, None)
    enc.embed(encoder, TEXTS, None)
    assert encoder.encoded == 6


def test_a_torn_cache_file_is_ignored_and_its_texts_embedded_again(tmp_path, caplog):
    encoder = HashingEncoder()
    expected = enc.embed(encoder, TEXTS, str(tmp_path))
    folder = tmp_path / "embeddings" / encoder.identity
    shard = next(folder.iterdir())
    shard.write_bytes(shard.read_bytes()[:100])  # a disk that filled up mid-write
    again = HashingEncoder()
    assert np.array_equal(enc.embed(again, TEXTS, str(tmp_path)), expected)
    assert again.encoded == 3
    assert "unreadable embedding cache file" in caplog.text


def test_a_cache_that_cannot_be_written_costs_time_not_the_run(tmp_path, caplog):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    vectors = enc.embed(HashingEncoder(), TEXTS, str(blocked))
    assert vectors.shape == (3, 32)
    assert "could not write the embedding cache" in caplog.text


def test_an_encoder_folder_without_its_tokenizer_is_refused_naming_the_folder(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"not yet checked")
    with pytest.raises(ConfigError, match=rf"{tmp_path}.*tokenizer\.json.*holds model\.onnx"):
        enc.resolve_encoder(str(tmp_path))
    with pytest.raises(ConfigError, match="model.encoder=.*expected none, minilm, or a folder"):
        enc.resolve_encoder(str(tmp_path / "absent"))


def test_the_missing_extra_is_named_with_the_command_that_installs_it(monkeypatch):
    monkeypatch.setattr(enc, "RUNTIME_MODULES", ("onnxruntime", "faqtune_absent_module"))
    with pytest.raises(ConfigError) as error:
        enc.resolve_encoder("minilm", key="model.encoder")
    message = str(error.value)
    assert "faqtune_absent_module" in message and "pip install -e '.[semantic]'" in message
    assert "model.encoder=none" in message


def _folder_copy_of_minilm(tmp_path):
    minilm = enc.resolve_encoder("minilm")
    folder = tmp_path / "encoder"
    folder.mkdir()
    shutil.copy(minilm.model_file, folder / "model.onnx")
    shutil.copy(minilm.tokenizer_file, folder / "tokenizer.json")
    return folder


@needs_semantic
def test_minilm_puts_paraphrases_together_and_its_files_match_their_pinned_hashes():
    encoder = enc.resolve_encoder("minilm")
    vectors = encoder.encode(TEXTS)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > 0.7 > 0.2 > similarity[0, 2]
    assert enc.sha256_file(enc.MINILM_TOKENIZER) == enc.MINILM_TOKENIZER_SHA256
    restored = pickle.loads(pickle.dumps(encoder))
    assert len(pickle.dumps(encoder)) < 10_000  # the package's file is not copied into models
    np.testing.assert_allclose(restored.encode(TEXTS[:1])[0], vectors[0], atol=1e-5)


@needs_semantic
def test_an_encoder_folder_travels_inside_the_pickle_and_a_changed_file_is_refused(tmp_path):
    folder = _folder_copy_of_minilm(tmp_path)
    encoder = enc.resolve_encoder(str(folder))
    assert encoder.identity == enc.resolve_encoder("minilm").identity  # the same files
    expected = encoder.encode(TEXTS[:1])
    carried = pickle.dumps(encoder)
    shutil.rmtree(folder)
    np.testing.assert_allclose(pickle.loads(carried).encode(TEXTS[:1]), expected, atol=1e-6)

    folder = _folder_copy_of_minilm(tmp_path)
    checked = enc.resolve_encoder(str(folder))
    with open(folder / "tokenizer.json", "a") as f:
        f.write(" ")
    with pytest.raises(ConfigError, match=rf"{folder / 'tokenizer.json'} has sha256"):
        checked.encode(TEXTS[:1])


@needs_semantic
def test_an_onnx_file_without_last_hidden_state_is_refused_naming_the_file(tmp_path):
    folder = _folder_copy_of_minilm(tmp_path)
    model = folder / "model.onnx"
    data = model.read_bytes()
    assert b"last_hidden_state" in data
    model.write_bytes(data.replace(b"last_hidden_state", b"pooled_output_xyz"))  # same length
    with pytest.raises(ConfigError, match=rf"{model} is not a sentence encoder.*pooled_output_xyz"):
        enc.verify_encoder(str(folder))
    model.write_bytes(b"\x00" * 64)
    with pytest.raises(ConfigError, match=rf"{model} is not an ONNX model"):
        enc.verify_encoder(str(folder))


@needs_semantic
def test_a_tokenizer_json_that_is_not_one_is_refused_naming_the_file(tmp_path):
    folder = _folder_copy_of_minilm(tmp_path)
    (folder / "tokenizer.json").write_text('{"version": "1.0", "model": "nothing like it"}')
    with pytest.raises(ConfigError, match=rf"{folder / 'tokenizer.json'} is not a tokenizer"):
        enc.verify_encoder(str(folder))


def test_mean_pooling_leaves_padding_out():
    hidden = np.array([[[1.0, 0.0], [0.0, 1.0], [9.0, 9.0]]], np.float32)
    pooled = enc.mean_pooled(hidden, np.array([[1, 1, 0]]))
    np.testing.assert_allclose(pooled, [[2 ** -0.5, 2 ** -0.5]], rtol=1e-6)


def test_text_keys_are_sha256_of_the_utf8_text():
    keys = enc._text_keys(["é", "a"])
    assert keys[0] == hashlib.sha256("é".encode()).digest()
