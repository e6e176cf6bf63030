"""A sweep's identity (`faqtune.tuning.identity`): a rerun on other data, another space or
another model stops before any work (probe case A2, docs/reliability.md)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from faqtune.config import to_object
from faqtune.errors import ConfigError
from faqtune.sweep import sweep
from tests.helpers import HAS_SEMANTIC, SMALL_SPACE, journal_study, sweep_conf

SERIAL = ["backend.n_workers=1", "sweep.pruner=none"]


def test_a_sweep_rerun_on_other_data_or_space_stops_before_any_work(make_cfg, store, caplog):
    conf = sweep_conf(make_cfg, store, *SERIAL, "sweep.n_trials=2", "sweep.finalize=false",
                      params=SMALL_SPACE)
    sweep(conf)
    with caplog.at_level("WARNING"):  # two workers asked for, no trial left: none starts
        assert sweep(dataclasses.replace(conf, backend=dataclasses.replace(
            conf.backend, n_workers=2)))["complete"] == 2
    assert "already has 2 finished trials (sweep.n_trials=2)" in caplog.text
    assert "trial(s) are left" not in caplog.text
    before = len(journal_study(Path(conf.paths.cache)).trials)
    other_data = sweep_conf(make_cfg, store, *SERIAL, "sweep.n_trials=4", "data.seed=7",
                            params=SMALL_SPACE)
    with pytest.raises(ConfigError, match=r"prepared data .* -> .*sweep.name=.*backend.restart"):
        sweep(other_data)
    other_space = sweep_conf(make_cfg, store, *SERIAL, "sweep.n_trials=4",
                             params={**SMALL_SPACE, "ngrams": {"choice": [1, 2]}})
    with pytest.raises(ConfigError, match=r"sweep.space.params.ngrams"):
        sweep(other_space)
    other_model = sweep_conf(make_cfg, store, *SERIAL, "sweep.n_trials=4",
                             "model.estimators=25", params=SMALL_SPACE)
    with pytest.raises(ConfigError, match=r"model.estimators 20 -> 25"):
        sweep(other_model)
    assert len(journal_study(Path(conf.paths.cache)).trials) == before, "no trial ran"
    assert not MlflowClient(store).search_model_versions("name = 'faqtune-faq-matcher'"), \
        "nothing registered"
    # the explicit way on: start the study afresh
    fresh = sweep(dataclasses.replace(
        other_data, sweep=dataclasses.replace(other_data.sweep, n_trials=1, finalize=False),
        backend=dataclasses.replace(other_data.backend, restart=True)))
    assert fresh["complete"] == 1


def test_an_encoder_folder_is_identified_by_its_files_and_no_encoder_as_before(make_cfg,
                                                                             tmp_path):
    """A sweep stored before encoders existed resumes (no encoder keys); an encoder folder
    whose files changed is another sweep, although its path is the same."""
    import json
    import shutil

    from faqtune.config import to_object
    from faqtune.features.encoder import resolve_encoder
    from faqtune.tuning.identity import differences, sweep_identity
    from faqtune.tuning.space import SearchSpace

    space = SearchSpace("matcher", ())
    plain = sweep_identity(to_object(make_cfg()), space, "abc")
    assert not [k for k in json.loads(plain["model"]) if k.startswith("encoder")]
    if not HAS_SEMANTIC:
        pytest.skip("the semantic extra is not installed")
    folder = tmp_path / "encoder"
    folder.mkdir()
    minilm = resolve_encoder("minilm")
    shutil.copy(minilm.model_file, folder / "model.onnx")
    shutil.copy(minilm.tokenizer_file, folder / "tokenizer.json")
    before = sweep_identity(to_object(make_cfg(f"model.encoder={folder}")), space, "abc")
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    tokenizer["truncation"] = None  # still a valid tokenizer, other files
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    after = sweep_identity(to_object(make_cfg(f"model.encoder={folder}")), space, "abc")
    assert [d.split(" ")[0] for d in differences(before, after)] == ["model.encoder_identity"]


def test_a_sweep_resumed_with_other_folds_stops_naming_sweep_folds(make_cfg):
    """Trials scored on the tune split and on folds are not comparable; a sweep from before
    folds (one fold) keeps its identity."""
    from faqtune.tuning.identity import differences, sweep_identity
    from faqtune.tuning.space import parse_space

    one = to_object(make_cfg())
    five = to_object(make_cfg("experiment=cross_validated"))
    space = parse_space("matcher", one.sweep.space.params)
    before, after = sweep_identity(one, space, "abc"), sweep_identity(five, space, "abc")
    assert "folds" not in before
    assert differences(before, after) == ["sweep.folds (unset) -> 5"]
