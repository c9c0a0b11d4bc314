"""Hyperparameter importances from the Optuna studies stored beside the sweep (`<sweep>/<stage>`)."""

from __future__ import annotations

import warnings
from typing import Any

import optuna
import pandas as pd

__all__ = ["EVALUATORS", "hyperparameter_importances"]

EVALUATORS = ("PED-ANOVA", "fANOVA")
MIN_TRIALS = 3
"""Fewest completed trials for which an importance is worth printing."""


def _evaluator(name: str) -> optuna.importance.BaseImportanceEvaluator:
    if name == "PED-ANOVA":
        return optuna.importance.PedAnovaImportanceEvaluator()
    return optuna.importance.FanovaImportanceEvaluator(seed=0)


def _load_study(url: str, name: str) -> optuna.Study | str:
    """The study, or a sentence saying why it cannot be read (never creates tables)."""
    try:
        storage = optuna.storages.RDBStorage(url, skip_table_creation=True)
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return f"no Optuna study named {name!r} in the store"
    except Exception as exc:  # a store without Optuna's tables, or an older Optuna schema
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"the Optuna study {name!r} could not be read ({first})"


def hyperparameter_importances(
    storage_url: str | None, sweep: str, stages: tuple[str, ...] = ("teachers", "students")
) -> tuple[pd.DataFrame, list[str]]:
    """PED-ANOVA and fANOVA importances of each swept parameter for the objective (dev loss).

    Returns a long table (study, evaluator, param, importance) and one note per
    importance that could not be computed, saying why (e.g. scikit-learn missing for fANOVA).
    """
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    if storage_url is None:
        return pd.DataFrame(columns=["study", "evaluator", "param", "importance"]), [
            "the store was given as an object without a URL, so the Optuna studies were not read"
        ]
    for stage in stages:
        name = f"{sweep}/{stage}"
        study = _load_study(storage_url, name)
        if isinstance(study, str):
            notes.append(study)
            continue
        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        varied = {p for t in complete for p in t.params}
        if len(complete) < MIN_TRIALS or not varied:
            notes.append(
                f"{name}: {len(complete)} completed trial(s) over {len(varied)} parameter(s); "
                f"importances need {MIN_TRIALS}+ trials and a searched parameter"
            )
            continue
        for evaluator in EVALUATORS:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # experimental-feature warnings
                    importances = optuna.importance.get_param_importances(
                        study, evaluator=_evaluator(evaluator)
                    )
            except ImportError as exc:
                package = "scikit-learn" if "sklearn" in str(exc) else str(exc).splitlines()[0]
                notes.append(
                    f"{evaluator} for {name} was not computed: it needs {package}, which is "
                    "not installed here"
                )
                continue
            except Exception as exc:  # too few or degenerate trials for this evaluator
                notes.append(f"{evaluator} for {name} could not be computed: {exc}")
                continue
            rows += [
                {"study": name, "evaluator": evaluator, "param": p, "importance": float(v)}
                for p, v in importances.items()
            ]
    from sweep.store import mask_url

    # driver messages may quote the URL: never print a password
    return pd.DataFrame(rows, columns=["study", "evaluator", "param", "importance"]), [
        mask_url(n) for n in notes
    ]
