"""Log-normal priors (sweep.priors): Optuna's start-up draws follow the prior exactly, every
trial records the value it trains with, and validation checks the values a prior can give."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
from scipy import stats

from sweep.config import LogNormal, QLogNormal, Uniform, load_sweep_config
from sweep.errors import ConfigError
from sweep.priors import QUANTILE, prior_support, prior_value
from sweep.search import StageSearcher, open_study, to_distributions, training_params
from tests.sweep.test_config import write_variant

REPO = Path(__file__).resolve().parents[2]
DRAWS = 400


def startup_draws(space: dict, n: int = DRAWS, seed: int = 0) -> list[dict]:
    """n trials of TPE's start-up phase (its own random draws), as the trials get them."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(n_startup_trials=n, seed=seed))
    distributions = to_distributions(space)
    return [training_params(space, study.ask(distributions).params) for _ in range(n)]


def test_lognormal_startup_draws_follow_the_prior() -> None:
    """The reference's lr prior, log lr ~ N(-7.3, 0.7): a KS test against scipy's lognorm."""
    prior = LogNormal(dist="lognormal", mu=-7.3, sigma=0.7)
    values = [d["lr"] for d in startup_draws({"lr": prior})]
    result = stats.kstest(values, stats.lognorm(s=0.7, scale=math.exp(-7.3)).cdf)
    assert result.pvalue > 0.01, result
    # and not a flat log-uniform over mu +- 2 sigma, which the same test tells apart
    flat = stats.loguniform(math.exp(-7.3 - 1.4), math.exp(-7.3 + 1.4))
    assert stats.kstest(values, flat.cdf).pvalue < 0.01


def test_q_lognormal_draws_are_multiples_of_q_from_the_rounded_prior() -> None:
    space = {
        "batch_size": QLogNormal(dist="q_lognormal", mu=5.0, sigma=1.5, low=1),
        "warmup_steps": QLogNormal(dist="q_lognormal", mu=5.7, sigma=1.0, q=10),
    }
    draws = startup_draws(space)
    batches = [d["batch_size"] for d in draws]
    warmups = [d["warmup_steps"] for d in draws]
    assert all(type(b) is int and b >= 1 for b in batches)
    assert all(type(w) is int and w % 10 == 0 for w in warmups)
    # round(x) of x ~ lognormal: P(value <= k) = P(x < k + 1/2); compare at a few quantiles
    prior = stats.lognorm(s=1.5, scale=math.exp(5.0))
    for k in (20, 148, 600):
        expected = prior.cdf(k + 0.5) - prior.cdf(0.5)  # conditioned on >= 1 (low: 1)
        observed = sum(b <= k for b in batches) / len(batches)
        assert abs(observed - expected / (1 - prior.cdf(0.5))) < 0.08, (k, observed, expected)


def test_truncation_conditions_the_prior_on_its_bounds() -> None:
    prior = LogNormal(dist="lognormal", mu=0.0, sigma=1.0, low=0.5, high=2.0)
    values = [d["x"] for d in startup_draws({"x": prior}, n=200)]
    assert all(0.5 <= v <= 2.0 for v in values)
    base = stats.lognorm(s=1.0)
    truncated_cdf = lambda v: (base.cdf(v) - base.cdf(0.5)) / (base.cdf(2.0) - base.cdf(0.5))  # noqa: E731
    assert stats.kstest(values, truncated_cdf).pvalue > 0.01
    # a quantised prior's bounds apply to the rounded value
    epochs = QLogNormal(dist="q_lognormal", mu=1.8, sigma=0.7, low=1, high=3)
    assert prior_support(epochs) == (1, 3)
    unbounded = QLogNormal(dist="q_lognormal", mu=1.8, sigma=0.7, low=1)
    assert prior_value(unbounded, 0.5) == round(math.exp(1.8)) == 6


def test_uniform_never_draws_its_high_end() -> None:
    """[low, high), as W&B: attention dropout up to 1.0 stays below TrainingConfig's lt=1."""
    space = {"attention_dropout": Uniform(dist="uniform", low=0.0, high=1.0)}
    distribution = to_distributions(space)["attention_dropout"]
    assert distribution.high < 1.0 and distribution.high == math.nextafter(1.0, 0.0)


def test_every_trial_records_the_value_it_trained_with(tmp_path: Path) -> None:
    """Store params (the searcher's suggestion) hold the value; Optuna holds the quantile
    and, as a user attribute, the same value."""
    space = {
        "lr": LogNormal(dist="lognormal", mu=-7.3, sigma=0.7),
        "epochs": QLogNormal(dist="q_lognormal", mu=1.8, sigma=0.7, low=1),
    }
    url = f"sqlite:///{tmp_path / 'priors.db'}"
    study = open_study(url, "p/teachers", seed=3, trials=3)
    searcher = StageSearcher(study, total=3, seed=3, role="teacher", space=space)
    configs = [searcher.suggest(f"tune-{i}") for i in range(3)]
    for config, trial in zip(configs, study.get_trials(deepcopy=False), strict=True):
        assert set(trial.params) == {QUANTILE + "lr", QUANTILE + "epochs"}
        assert config["params"]["lr"] == prior_value(space["lr"], trial.params[QUANTILE + "lr"])
        assert config["params"]["epochs"] == prior_value(
            space["epochs"], trial.params[QUANTILE + "epochs"]
        )
        assert trial.user_attrs == config["params"]
    assert len({c["params"]["lr"] for c in configs}) == 3


def test_the_reference_sweep_example_states_the_reference_priors() -> None:
    """examples/babyllama2-sweep.yaml: the reference's eleven priors, none guessed."""
    space = load_sweep_config(REPO / "examples" / "babyllama2-sweep.yaml").stages["teachers"].space
    dumped = {name: param.model_dump(exclude_none=True) for name, param in space.items()}
    assert dumped == {
        "batch_size": {"dist": "q_lognormal", "mu": 5, "sigma": 1.5, "q": 1, "low": 1},
        "epochs": {"dist": "q_lognormal", "mu": 1.8, "sigma": 0.7, "q": 1, "low": 1},
        "lr": {"dist": "lognormal", "mu": -7.3, "sigma": 0.7},
        "beta1": {"dist": "one_minus_loguniform", "low": 1e-2, "high": 1.0},
        "beta2": {"dist": "one_minus_loguniform", "low": 1e-4, "high": 1e-2},
        "eps": {"dist": "lognormal", "mu": -13.8, "sigma": 3.5},
        "schedule": {"dist": "categorical", "choices": ["linear", "cosine"]},
        "weight_decay": {"dist": "lognormal", "mu": 1, "sigma": 1.5},
        "grad_clip": {"dist": "lognormal", "mu": 0, "sigma": 1},
        "warmup_steps": {"dist": "q_lognormal", "mu": 5.7, "sigma": 1, "q": 1},
        "attention_dropout": {"dist": "uniform", "low": 0.0, "high": 1.0},
    }


@pytest.mark.parametrize(
    ("param", "field", "words"),
    [
        (
            {"dist": "q_lognormal", "mu": 5, "sigma": 1.5},
            "stages.teachers.space.batch_size.low",
            "batch_size = 0",
        ),
        (
            {"dist": "lognormal", "mu": 5, "sigma": 1.5},
            "stages.teachers.space.batch_size",
            "integer q",
        ),
        (
            {"dist": "q_lognormal", "mu": 5, "sigma": 1.5, "q": 0.5, "low": 1},
            "stages.teachers.space.batch_size",
            "integer q",
        ),
        (
            {"dist": "q_lognormal", "mu": 5, "sigma": 1.5, "low": 8, "high": 4},
            "stages.teachers.space.batch_size.high",
            "swap",
        ),
        (
            {"dist": "q_lognormal", "mu": 5, "sigma": 0.01, "low": 1, "high": 2},
            "stages.teachers.space.batch_size",
            "none of the prior's mass",
        ),
        (
            {"dist": "lognormal", "mu": 0, "sigma": 1, "sigma_": 1},
            "stages.teachers.space.batch_size.sigma_",
            "unknown key",
        ),
        (
            {"dist": "q_lognormal", "mu": 1000, "sigma": 1, "low": 1},
            "stages.teachers.space.batch_size",
            "beyond what a trial can train with",
        ),
        (
            {"dist": "q_lognormal", "mu": 40, "sigma": 1, "low": 1},
            "stages.teachers.space.batch_size",
            "beyond what a trial can train with",
        ),
    ],
    ids=[
        "rounds to 0",
        "continuous on int",
        "float q on int",
        "swapped",
        "no mass",
        "typo",
        "overflow",
        "huge int",
    ],
)
def test_a_prior_giving_a_refused_value_names_its_field(
    tmp_path: Path, param: dict, field: str, words: str
) -> None:
    path = write_variant(tmp_path, {"stages.teachers.space.batch_size": param})
    with pytest.raises(ConfigError) as info:
        load_sweep_config(path)
    message = str(info.value)
    assert f"{field}:" in message and words in message, message


def test_a_lognormal_beyond_a_bound_names_the_bound(tmp_path: Path) -> None:
    """beta2 must stay below 1: a prior reaching 1 is refused at its high end."""
    param = {"dist": "lognormal", "mu": math.log(0.99), "sigma": 0.01}
    path = write_variant(tmp_path, {"stages.teachers.space.beta2": param})
    with pytest.raises(ConfigError, match=r"stages.teachers.space.beta2.high: .*set high"):
        load_sweep_config(path)
    path = write_variant(tmp_path, {"stages.teachers.space.beta2": {**param, "high": 0.999}})
    assert load_sweep_config(path).stages["teachers"].space["beta2"].high == 0.999
