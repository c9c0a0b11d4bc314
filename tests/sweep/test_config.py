"""sweep.yaml validation: every shipped yaml loads; every bad input names its field path."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from sweep.cli import app
from sweep.config import load_sweep_config
from sweep.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
SHIPPED = [REPO / "sweep.yaml", *sorted((REPO / "examples").glob("*.yaml"))]
DEFAULT = yaml.safe_load((REPO / "sweep.yaml").read_text())


def write_variant(tmp_path: Path, changes: dict[str, Any], raw: dict | None = None) -> Path:
    """The default sweep.yaml with dotted-path changes (value None deletes the key)."""
    doc = copy.deepcopy(raw if raw is not None else DEFAULT)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split(".")
        node = doc
        for key in parents:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))  # stages run in file order
    return path


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_yaml_loads(path: Path) -> None:
    config = load_sweep_config(path)
    assert config.source == path.resolve()
    assert Path(config.data.corpus).is_dir()
    for stage in config.stages.values():  # every ensemble fits its teachers
        if stage.kind == "ensemble":
            assert stage.k <= config.stages[stage.teachers].trials
    # every key of the shipped file carries a comment (the file is the documentation)
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", "-")) and ":" in stripped:
            is_space_entry = "dist:" in stripped
            assert "#" in stripped or is_space_entry, f"{path.name}:{lineno} has no comment"


def test_defaults_resolve_beside_the_yaml(tmp_path: Path) -> None:
    config = load_sweep_config(write_variant(tmp_path, {}))
    assert config.storage == f"sqlite:///{tmp_path.resolve() / 'demo.db'}"
    assert config.output_dir == str(tmp_path.resolve() / "runs")
    assert list(tmp_path.iterdir()) == [tmp_path / "sweep.yaml"], "validation wrote a file"


def test_cli_overrides_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWEEP_STORAGE_URL", "postgresql+psycopg://u:pw@db/sweep")
    monkeypatch.setenv("RAY_ADDRESS", "head:6379")
    config = load_sweep_config(write_variant(tmp_path, {}))
    assert config.storage == "postgresql+psycopg://u:pw@db/sweep"
    assert config.ray_address == "head:6379"
    config = load_sweep_config(
        write_variant(tmp_path, {}), storage="sqlite:///x.db", ray_address="other:1"
    )
    assert config.storage == f"sqlite:///{tmp_path.resolve() / 'x.db'}"
    assert config.ray_address == "other:1"


def test_config_hash_tracks_the_study_not_where_it_runs(tmp_path: Path) -> None:
    a = load_sweep_config(write_variant(tmp_path, {}))
    b = load_sweep_config(write_variant(tmp_path, {"training.lr": 0.001}))
    assert a.config_hash() == load_sweep_config(write_variant(tmp_path, {})).config_hash()
    assert a.config_hash() != b.config_hash()
    # another store, cluster, checkpoint dir or cache is the same study (resume on a cluster)
    elsewhere = load_sweep_config(
        # (a file:// URI: an s3:// bucket is now probed, and this machine has no network)
        write_variant(
            tmp_path, {"data.cache_dir": "/tmp/elsewhere", "output_dir": "file:///tmp/else/r"}
        ),
        storage="postgresql+psycopg://u:pw@db/s",
        ray_address="head:6379",
    )
    assert elsewhere.config_hash() == a.config_hash()


def test_the_stored_config_never_holds_a_password(tmp_path: Path) -> None:
    config = load_sweep_config(write_variant(tmp_path, {}), storage="postgresql://u:hunter2@db/s")
    assert "hunter2" not in str(config.resolved_json())
    assert config.resolved_json()["storage"] == "postgresql://u:***@db/s"


def _empty_split_corpus(tmp_path: Path) -> str:
    corpus = tmp_path / "corpus"
    for split in ("train", "dev", "test"):
        (corpus / split).mkdir(parents=True)
        (corpus / split / f"childes.{split}").write_text("" if split == "train" else "hello\n")
    return str(corpus)


BAD_INPUTS: list[tuple[str, dict[str, Any], str]] = [
    ("unknown key", {"stages.students_k2.space.lrr": 0.1}, "stages.students_k2.space.lrr"),
    ("unknown top key", {"seeed": 1}, "seeed"),
    ("unknown nested key", {"data.vocab": 100}, "data.vocab"),
    ("wrong type", {"stages.teachers.trials": "many"}, "stages.teachers.trials"),
    (
        "low > high",
        {"stages.students_k2.space.lr": {"dist": "loguniform", "low": 0.01, "high": 0.001}},
        "stages.students_k2.space.lr.high",
    ),
    (
        "log low <= 0",
        {"stages.teachers.space.lr": {"dist": "loguniform", "low": 0.0, "high": 0.01}},
        "stages.teachers.space.lr.low",
    ),
    (
        "alpha above 1",
        {"stages.students_k2.space.alpha": {"dist": "uniform", "low": 0.0, "high": 1.5}},
        "stages.students_k2.space.alpha.high",
    ),
    (
        "alpha fixed below 0",
        {"stages.students_k2.space.alpha": -0.1},
        "stages.students_k2.space.alpha",
    ),
    (
        "temperature <= 0",
        {"stages.students_k2.space.temperature": {"dist": "uniform", "low": 0.0, "high": 2.0}},
        "stages.students_k2.space.temperature.low",
    ),
    ("training alpha out of range", {"training.alpha": 2.0}, "training.alpha"),
    ("K > teacher trials", {"stages.ensemble_k2.k": 9}, "stages.ensemble_k2.k"),
    ("missing corpus", {"data.corpus": "/nonexistent/corpus"}, "data.corpus"),
    ("unknown dialect", {"storage": "mysql://root@localhost/x"}, "storage"),
    ("sqlite dir missing", {"storage": "sqlite:////nonexistent/dir/s.db"}, "storage"),
    ("teacher distilled", {"stages.teachers.space.alpha": 0.5}, "stages.teachers.space.alpha"),
    (
        "bad dist name",
        {"stages.teachers.space.lr": {"dist": "gauss", "low": 1}},
        "stages.teachers.space.lr",
    ),
    ("seq beyond model", {"data.seq_length": 4096}, "data.seq_length"),
    ("unknown kind", {"stages.extra": {"kind": "teacher", "trials": 2}}, "stages.extra"),
    ("no kind", {"stages.extra": {"trials": 2}}, "stages.extra"),
    ("bad stage name", {"stages.bad name": {"kind": "teachers"}}, "stages"),
    (
        "unknown input",
        {"stages.students_k1.ensemble": "ensemble_k3"},
        "stages.students_k1.ensemble",
    ),
    (
        "input of wrong kind",
        {"stages.students_k1.ensemble": "teachers"},
        "stages.students_k1.ensemble",
    ),
    (
        "input declared later",
        {"stages.ensemble_k1.teachers": "students_k2"},
        "stages.ensemble_k1.teachers",
    ),
    ("ambiguous input", {"stages.students_k1.ensemble": None}, "stages.students_k1.ensemble"),
    (
        "repeat of an ensemble",
        {"stages.repeats.sources": ["ensemble_k1"]},
        "stages.repeats.sources",
    ),
    ("reference without a cap", {"data.max_train_tokens": None}, "stages.reference.data_scale"),
    ("glue on no stage", {"evaluation.glue.stages": ["students"]}, "evaluation.glue.stages[0]"),
    ("top_n above trials", {"stages.baselines.top_n": 9}, "stages.baselines.top_n"),
    (
        "int param float",
        {"stages.teachers.space.batch_size": 16.5},
        "stages.teachers.space.batch_size",
    ),
    (
        "beta2 beyond 1",
        {"stages.teachers.space.beta2": {"dist": "uniform", "low": 0.99, "high": 1.01}},
        "stages.teachers.space.beta2.high",
    ),
    (
        "beta2 reaching 1 on a grid",
        {"stages.teachers.space.beta2": {"dist": "uniform", "low": 0.9, "high": 1.0, "step": 0.05}},
        "stages.teachers.space.beta2.high",
    ),
    (
        "one_minus_loguniform at 0",
        {"stages.teachers.space.beta2": {"dist": "one_minus_loguniform", "low": 0.0, "high": 0.1}},
        "stages.teachers.space.beta2.low",
    ),
    (
        "one_minus_loguniform beyond 1",
        {"stages.teachers.space.beta1": {"dist": "one_minus_loguniform", "low": 0.1, "high": 2.0}},
        "stages.teachers.space.beta1.high",
    ),
    (
        "float dist on an int field",
        {"stages.teachers.space.epochs": {"dist": "uniform", "low": 1, "high": 4}},
        "stages.teachers.space.epochs",
    ),
    (
        "unknown schedule",
        {"stages.teachers.space.schedule": {"dist": "categorical", "choices": ["cosine", "wsd"]}},
        "stages.teachers.space.schedule.choices[1]",
    ),
    (
        "dropout of 1",
        {"stages.teachers.space.attention_dropout": 1.0},
        "stages.teachers.space.attention_dropout",
    ),
    ("runtime field", {"stages.teachers.space.threads": 2}, "stages.teachers.space.threads"),
]


def test_a_space_the_trainers_would_refuse_is_refused_by_their_own_validator(
    tmp_path: Path,
) -> None:
    """beta2 >= 1 is reachable: `sweep validate` says so with TrainingConfig's own words; a
    continuous uniform up to 1.0 never draws 1.0 ([low, high)), so it is accepted."""
    from pydantic import ValidationError

    from trainers.config import TrainingConfig

    with pytest.raises(ValidationError) as trainers_verdict:
        TrainingConfig(beta2=1.0)
    trainers_message = trainers_verdict.value.errors()[0]["msg"]
    space = {"dist": "one_minus_loguniform", "low": 0.0001, "high": 0.01}
    path = write_variant(tmp_path, {"stages.teachers.space.beta2": space})
    assert load_sweep_config(path).stages["teachers"].space["beta2"].model_dump() == space
    up_to_one = {"dist": "uniform", "low": 0.9, "high": 1.0}
    path = write_variant(tmp_path, {"stages.teachers.space.beta2": up_to_one})
    assert load_sweep_config(path).stages["teachers"].space["beta2"].high == 1.0
    path = write_variant(
        tmp_path, {"stages.teachers.space.beta2": {"dist": "uniform", "low": 0.9, "high": 1.5}}
    )
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())  # rich wraps long lines
    assert f"stages.teachers.space.beta2.high: {trainers_message}" in output
    assert "Traceback" not in result.output


def test_every_training_field_but_runtime_ones_is_searchable(tmp_path: Path) -> None:
    from trainers.config import RUNTIME_FIELDS, TrainingConfig

    space = {
        "epochs": {"dist": "int", "low": 1, "high": 3},
        "batch_size": {"dist": "int", "low": 8, "high": 64, "log": True},
        "lr": {"dist": "loguniform", "low": 1e-4, "high": 1e-2},
        "beta1": {"dist": "one_minus_loguniform", "low": 0.01, "high": 1.0},
        "beta2": {"dist": "one_minus_loguniform", "low": 0.0001, "high": 0.01},
        "eps": {"dist": "loguniform", "low": 1e-9, "high": 1e-6},
        "weight_decay": {"dist": "uniform", "low": 0.0, "high": 5.0},
        "schedule": {"dist": "categorical", "choices": ["linear", "cosine"]},
        "warmup_steps": {"dist": "int", "low": 0, "high": 100},
        "grad_clip": {"dist": "loguniform", "low": 0.1, "high": 10.0},
        "attention_dropout": {"dist": "uniform", "low": 0.0, "high": 0.2},
        "checkpoint": {"dist": "categorical", "choices": ["best", "last"]},
        "checkpoint_metric": {
            "dist": "categorical",
            "choices": ["dev_loss", "dev_distillation_loss"],
        },
        "alpha": {"dist": "uniform", "low": 0.0, "high": 1.0},
        "temperature": {"dist": "loguniform", "low": 0.5, "high": 4.0},
        "ensemble": {"dist": "categorical", "choices": ["logits", "probs"]},
        "kl_reduction": "babyllama2",
    }
    assert set(space) == set(TrainingConfig.model_fields) - RUNTIME_FIELDS
    path = write_variant(tmp_path, {"stages.students_k2.space": space})
    config = load_sweep_config(path)
    assert set(config.stages["students_k2"].space) == set(space)


@pytest.mark.parametrize(("case", "changes", "field"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_names_the_field(
    tmp_path: Path, case: str, changes: dict[str, Any], field: str
) -> None:
    path = write_variant(tmp_path, changes)
    with pytest.raises(ConfigError) as info:
        load_sweep_config(path)
    assert f"{field}:" in str(info.value), str(info.value)
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert field in result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.yaml"], "nothing is written"


def test_missing_test_split_is_refused(tmp_path: Path) -> None:
    """Every trial reports test_loss, so a corpus without test/ is refused up front."""
    corpus = tmp_path / "corpus"
    for split in ("train", "dev"):
        (corpus / split).mkdir(parents=True)
        (corpus / split / f"childes.{split}").write_text("hello\n")
    path = write_variant(tmp_path, {"data.corpus": str(corpus)})
    with pytest.raises(ConfigError, match=r"data.corpus: .*corpus/test (does not exist|holds no)"):
        load_sweep_config(path)


def test_empty_split_is_refused(tmp_path: Path) -> None:
    path = write_variant(tmp_path, {"data.corpus": _empty_split_corpus(tmp_path)})
    with pytest.raises(
        ConfigError, match=r"data.corpus: .*train holds no non-empty \*\.train files"
    ):
        load_sweep_config(path)


def test_not_yaml_and_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_sweep_config(path)
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_sweep_config(path)
    with pytest.raises(ConfigError, match="no such file"):
        load_sweep_config(tmp_path / "missing.yaml")


def test_data_root_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = load_sweep_config(write_variant(tmp_path, {})).data.root
    monkeypatch.setenv("SWEEP_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="SWEEP_DATA_DIR"):
        load_sweep_config(write_variant(tmp_path, {}))
    monkeypatch.setenv("SWEEP_DATA_DIR", str(shared))
    assert load_sweep_config(write_variant(tmp_path, {})).data.root == shared
    # the yaml's own path wins over the environment
    with pytest.raises(ConfigError, match=r"data\.root"):
        load_sweep_config(write_variant(tmp_path, {"data.root": "missing-dir"}))


def test_console_script_exits_2_without_traceback(tmp_path: Path) -> None:
    path = write_variant(tmp_path, {"stages.ensemble_k2.k": 9})
    sweep = Path(sys.executable).parent / "sweep"
    proc = subprocess.run(
        [str(sweep), "validate", str(path)], capture_output=True, text=True, env=os.environ.copy()
    )
    assert proc.returncode == 2
    assert "stages.ensemble_k2.k" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_validate_prints_resolved_config_with_masked_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_variant(tmp_path, {"storage": "postgresql+psycopg://sweep:hunter2@db:5432/s"})
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.output
    assert "postgresql+psycopg://sweep:***@db:5432/s" in result.output
    assert "babylm-mini" in result.output


def test_stages_run_in_declared_order_with_their_inputs(tmp_path: Path) -> None:
    config = load_sweep_config(write_variant(tmp_path, {}))
    assert list(config.stages) == [
        "teachers",
        "ensemble_k1",
        "ensemble_k2",
        "students_k1",
        "students_k2",
        "baselines",
        "repeats",
        "reference",
    ]
    stages = config.stages
    assert (stages["ensemble_k1"].k, stages["ensemble_k2"].k) == (1, 2)
    assert stages["students_k1"].ensemble == "ensemble_k1"
    assert stages["repeats"].sources == ["teachers", "students_k1", "students_k2"]
    assert stages["reference"].data_scale == 10
    # like for like: teachers and students share early stopping, epochs and trial budget
    for name in ("students_k1", "students_k2"):
        for key in ("scheduler", "epochs", "trials"):
            assert getattr(stages[name], key) == getattr(stages["teachers"], key)


def test_the_first_release_format_keeps_working(tmp_path: Path) -> None:
    """Five stages named after their kinds, no `kind:` and no inputs: as before."""
    old = {
        "teachers": {"trials": 3, "space": {"lr": 0.003}},
        "ensemble": {"k": 2},
        "students": {"trials": 3, "space": {"alpha": 0.5}},
        "baselines": {"top_n": 1},
        "repeats": {"seeds": 2},
    }
    config = load_sweep_config(
        write_variant(tmp_path, {"stages": old, "evaluation.glue.stages": ["repeats"]})
    )
    assert [s.kind for s in config.stages.values()] == list(old)
    assert config.stages["ensemble"].teachers == "teachers"
    assert config.stages["students"].ensemble == "ensemble"
    assert config.stages["baselines"].students == ["students"]
    assert config.stages["repeats"].sources == ["teachers", "students"]
    # a sweep.yaml with no stages at all gets the same five
    assert list(load_sweep_config(write_variant(tmp_path, {"stages": None})).stages) == list(old)


def test_stages_may_be_a_list_of_named_stages(tmp_path: Path) -> None:
    listed = [{"name": name, **stage} for name, stage in DEFAULT["stages"].items()]
    config = load_sweep_config(write_variant(tmp_path, {"stages": listed}))
    assert config.config_hash() == load_sweep_config(write_variant(tmp_path, {})).config_hash()


def test_config_hash_leaves_out_stage_sizes_only(tmp_path: Path) -> None:
    """More trials, seeds or controls grow the same study; anything else is another study."""
    base = load_sweep_config(write_variant(tmp_path, {})).config_hash()
    grown = {
        "stages.teachers.trials": 6,
        "stages.repeats.seeds": 3,
        "stages.reference.seeds": 3,
        "stages.baselines.top_n": 2,
    }
    assert load_sweep_config(write_variant(tmp_path, grown)).config_hash() == base
    lr = {"dist": "loguniform", "low": 1.0e-4, "high": 1.0e-2}
    for other in (
        {"stages.teachers.space.lr": lr},
        {"stages.ensemble_k2.k": 3, "stages.teachers.trials": 4},
        {"stages.reference.data_scale": 5},
        {"stages.students_k1.epochs": 3},
    ):
        assert load_sweep_config(write_variant(tmp_path, other)).config_hash() != base


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        # a misspelt stage key reads as a misspelt data key does (issue 27, item 7)
        (
            {"stages.teachers.trails": 4, "stages.teachers.trials": None},
            "stages.teachers.trails: unknown key; did you mean 'trials'?",
        ),
        ({"data.vocab_sise": 10}, "data.vocab_sise: unknown key; did you mean 'vocab_size'?"),
        ({"stages.repeats.zzz": 1}, "stages.repeats.zzz: unknown key; remove it or check"),
        (
            {"stages.students_k1.kind": "student"},
            "stages.students_k1: kind: 'student' is not a kind; use one of teachers, ensemble, "
            "students, baselines, repeats, reference",
        ),
        (
            {"stages.students_k1.ensemble": "teachers"},
            "stages.students_k1.ensemble: 'teachers' is a teachers stage; name an ensemble stage",
        ),
    ],
)
def test_stage_mistakes_get_messages_that_say_what_to_type(
    tmp_path: Path, changes: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_sweep_config(write_variant(tmp_path, changes))
    assert expected in str(info.value), str(info.value)
    assert "Extra inputs" not in str(info.value) and "kind: required" not in str(info.value)
