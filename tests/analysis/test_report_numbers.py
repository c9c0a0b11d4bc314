"""The report's numbers against an independent computation on the ground truth written to the store."""

from __future__ import annotations

import hashlib
import html
import itertools
import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats as sps

from analysis.load import load_frames
from analysis.report import write_report
from sweep.errors import StoreError
from sweep.store import Store

REPO = Path(__file__).resolve().parents[2]


def report_data(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    match = re.search(
        r'<script type="application/json" id="report-data">(.*?)</script>', text, re.S
    )
    assert match, "the report embeds its numbers as JSON"
    return json.loads(match.group(1))  # type: ignore[no-any-return]


def visible_text(path: Path) -> str:
    text = re.sub(r"<script.*?</script>", " ", path.read_text(encoding="utf-8"), flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", text))


def readings(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return [html.unescape(r) for r in re.findall(r"<p class='reading'>(.*?)</p>", text, re.S)]


def iqm(values: list[float]) -> float:
    v = sorted(values)
    cut = len(v) // 4
    return float(np.mean(v[cut : len(v) - cut]))


def holm_reference(ps: list[float]) -> list[float]:
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    out, running = [0.0] * len(ps), 0.0
    for rank, i in enumerate(order):
        running = max(running, (len(ps) - rank) * ps[i])
        out[i] = min(running, 1.0)
    return out


def group_trials(synth: Any, key: str) -> list[Any]:
    stage, _, role = key.partition(":")
    return [t for t in synth.trials if t.stage == stage and (not role or t.role == role)]


def test_headline_table_matches_ground_truth(demo_sweep: Any, demo_report: Path) -> None:
    rows = {r["group"]: r for r in report_data(demo_report)["headline"]}
    assert list(rows) == ["teachers", "students", "baselines", "repeats:teacher", "repeats:student"]
    for key, row in rows.items():
        trials = group_trials(demo_sweep, key)
        done = [t for t in trials if t.status == "COMPLETE"]
        assert row["trials"] == len(done)
        assert row["pruned"] == sum(t.status == "PRUNED" for t in trials)
        assert row["failed"] == sum(t.status == "FAILED" for t in trials)
        assert row["configs"] == len({json.dumps(t.params, sort_keys=True) for t in done})
        assert row["seeds"] == sorted({t.seed for t in done})
        # "best" is the held-out value of the trial dev loss picks: select on dev, report on test
        # (seed re-runs of one config have nothing to choose: dev would pick the luckiest seed)
        chosen = min(done, key=lambda t: (t.dev_loss, t.number)) if done else None
        for metric, values, attr in (
            ("blimp_overall", [t.blimp for t in done], "blimp"),
            ("test_loss", [t.test_loss for t in done], "test_loss"),
        ):
            if ":" in key:
                assert row[f"{metric}_best"] is None
            else:
                assert row[f"{metric}_best"] == pytest.approx(getattr(chosen, attr))
            assert row[f"{metric}_mean"] == pytest.approx(np.mean(values))
            assert row[f"{metric}_iqm"] == pytest.approx(iqm(values))  # type: ignore[arg-type]
            if len(values) >= 3:
                assert row[f"{metric}_iqm_low"] <= row[f"{metric}_iqm"] <= row[f"{metric}_iqm_high"]
            else:
                assert row[f"{metric}_iqm_low"] is None and row[f"{metric}_note"]
    text = visible_text(demo_report)
    teacher = min(demo_sweep.of("teachers"), key=lambda t: t.dev_loss)  # type: ignore[arg-type,return-value]
    assert f"{100 * teacher.blimp:.2f}%" in text
    assert "dev_loss_best" not in rows["teachers"]  # no headline number on the selection split


def test_student_against_teacher_matches_scipy(demo_sweep: Any, demo_report: Path) -> None:
    data = report_data(demo_report)
    rep_s = [t.blimp for t in demo_sweep.of("repeats", "student")]
    rep_t = [t.blimp for t in demo_sweep.of("repeats", "teacher")]
    pi = next(
        r
        for r in data["improvement"]
        if r["metric"] == "blimp_overall" and r["scope"].startswith("seed")
    )
    u = sps.mannwhitneyu(rep_s, rep_t).statistic
    assert pi["estimate"]["value"] == pytest.approx(u / (len(rep_s) * len(rep_t)))
    sweeps = next(
        r
        for r in data["improvement"]
        if r["metric"] == "test_loss" and r["scope"].startswith("completed")
    )
    s_loss = [t.test_loss for t in demo_sweep.of("students")]
    t_loss = [t.test_loss for t in demo_sweep.of("teachers")]
    lower = np.mean([(s < t) + 0.5 * (s == t) for s in s_loss for t in t_loss])  # type: ignore[operator]
    assert sweeps["estimate"]["value"] == pytest.approx(lower)

    tests = {(t["metric"], t["name"]): t for t in data["tests"]}
    welch = tests[("blimp_overall", "Welch t")]
    assert welch["p_value"] == pytest.approx(sps.ttest_ind(rep_s, rep_t, equal_var=False).pvalue)
    assert welch["difference"] == pytest.approx(np.mean(rep_s) - np.mean(rep_t))  # type: ignore[arg-type]
    mw = tests[("blimp_overall", "Mann-Whitney U")]
    assert mw["p_value"] == pytest.approx(
        sps.mannwhitneyu(rep_s, rep_t, alternative="two-sided").pvalue
    )
    assert mw["min_p"] == pytest.approx(2 / 20)  # 3 vs 3 values: C(6, 3) = 20 orderings
    # the loss effect is P(student better) = P(student loss lower), not P(student loss higher)
    mw_loss = tests[("test_loss", "Mann-Whitney U")]
    rs = [t.test_loss for t in demo_sweep.of("repeats", "student")]
    rt = [t.test_loss for t in demo_sweep.of("repeats", "teacher")]
    assert mw_loss["effect_name"] == "P(student better)"
    assert mw_loss["effect"] == pytest.approx(
        np.mean([(a < b) + 0.5 * (a == b) for a in rs for b in rt])  # type: ignore[operator]
    )

    # matched baselines: each baseline against the student trial it controls for
    pairs = [(demo_sweep.by_key(b.source), b) for b in demo_sweep.of("baselines") if b.source]
    s_b = [s.blimp for s, _ in pairs]
    b_b = [b.blimp for _, b in pairs]
    paired = tests[("blimp_overall", "paired t")]
    assert paired["n_a"] == len(pairs) == 2
    assert paired["p_value"] == pytest.approx(sps.ttest_rel(s_b, b_b).pvalue)
    assert tests[("blimp_overall", "Wilcoxon signed-rank")]["min_p"] == pytest.approx(0.5)
    for t in data["tests"]:
        assert (t["p_value"] is None) == (t["note"] is not None)


def test_verdicts_pair_the_repeats_by_seed(demo_sweep: Any, demo_report: Path) -> None:
    data = report_data(demo_report)
    by = {(v["comparison"], v["metric"]): v for cv in data["verdicts"] for v in cv["metrics"]}
    v = by[("students vs teachers", "blimp_overall")]
    s = {t.seed: t.blimp for t in demo_sweep.of("repeats", "student")}
    t = {t.seed: t.blimp for t in demo_sweep.of("repeats", "teacher")}
    d = [s[k] - t[k] for k in sorted(s)]
    ref = sps.ttest_rel([s[k] for k in sorted(s)], [t[k] for k in sorted(s)])
    assert v["n_pairs"] == 3
    assert v["difference"] == pytest.approx(np.mean(d))
    assert v["p"] == pytest.approx(ref.pvalue)
    ci = ref.confidence_interval()
    assert (v["low"], v["high"]) == pytest.approx((ci.low, ci.high))
    # the test loss verdict is on test loss, oriented: difference is student minus teacher
    loss = by[("students vs teachers", "test_loss")]
    sl = {t.seed: t.test_loss for t in demo_sweep.of("repeats", "student")}
    tl = {t.seed: t.test_loss for t in demo_sweep.of("repeats", "teacher")}
    assert loss["difference"] == pytest.approx(np.mean([sl[k] - tl[k] for k in sorted(sl)]))  # type: ignore[operator]
    # the Holm family holds exactly the tests that can reach significance
    family = [v for v in by.values() if v["in_family"]]
    assert all(v["n_pairs"] >= 3 for v in family)
    ps = [v["p"] for v in family]
    assert [v["p_holm"] for v in family] == pytest.approx(holm_reference(ps))
    base = by[("students vs alpha=1", "blimp_overall")]
    assert base["n_pairs"] == 2 and not base["in_family"] and base["verdict"] == "inconclusive"
    assert "smallest p a Wilcoxon or sign-flip test can reach at 2 pairs is 0.50" in base["reason"]
    assert data["verdict_lines"][0].startswith(
        "ensemble student (students, 2 teachers) vs teachers"
    )


def test_expected_best_matches_brute_force(demo_sweep: Any, demo_report: Path) -> None:
    curves = report_data(demo_report)["expected_best"]
    teachers = [t.blimp for t in demo_sweep.of("teachers")]
    students = [t.test_loss for t in demo_sweep.of("students")]
    t_curve = curves["blimp_overall"]["teachers"]
    assert t_curve["n"] == len(teachers) == 6
    brute = np.mean([max(d) for d in itertools.product(teachers, repeat=len(teachers))])  # type: ignore[type-var]
    assert t_curve["mean"][-1] == pytest.approx(brute)
    assert t_curve["mean"][0] == pytest.approx(np.mean(teachers))  # type: ignore[arg-type]
    s_curve = curves["test_loss"]["students"]
    brute_min = np.mean([min(d) for d in itertools.product(students, repeat=3)])  # type: ignore[type-var]
    assert s_curve["mean"][2] == pytest.approx(brute_min)
    for curve in (t_curve, s_curve):
        assert all(
            lo <= m + 1e-9 <= hi + 2e-9
            for lo, m, hi in zip(curve["low"], curve["mean"], curve["high"], strict=True)
        )


def test_fraction_of_students_beating_the_best_teacher(demo_sweep: Any, demo_report: Path) -> None:
    beat = report_data(demo_report)["students_beating_best_teacher"]
    chosen = min(demo_sweep.of("teachers"), key=lambda t: t.dev_loss)  # type: ignore[arg-type,return-value]
    students = demo_sweep.of("students")
    assert beat["blimp_overall"]["best_teacher"] == pytest.approx(chosen.blimp)
    assert beat["blimp_overall"]["wins"] == sum(t.blimp > chosen.blimp for t in students)  # type: ignore[operator]
    assert beat["test_loss"]["wins"] == sum(t.test_loss < chosen.test_loss for t in students)  # type: ignore[operator]
    assert beat["test_loss"]["n"] == len(students)
    ci = sps.binomtest(beat["test_loss"]["wins"], len(students)).proportion_ci(method="wilson")
    assert beat["test_loss"]["estimate"]["low"] == pytest.approx(ci.low)


def test_paradigm_differences_match_fisher_and_bh(demo_sweep: Any, demo_report: Path) -> None:
    data = report_data(demo_report)["paradigms"]
    student = min(demo_sweep.of("students"), key=lambda t: t.dev_loss)  # type: ignore[arg-type,return-value]
    teacher = min(demo_sweep.of("teachers"), key=lambda t: t.dev_loss)  # type: ignore[arg-type,return-value]
    assert data["chosen"]["student_number"] == student.number
    assert data["chosen"]["teacher_number"] == teacher.number
    rows = [r for r in data["table"] if r["level"] == "paradigm"]
    assert len(rows) == len(student.paradigms)
    ps = {}
    for task, acc in student.paradigms.items():
        s, t = round(acc * 1000), round(teacher.paradigms[task] * 1000)
        ps[task] = sps.fisher_exact([[s, 1000 - s], [t, 1000 - t]]).pvalue
    qs = dict(zip(ps, sps.false_discovery_control(list(ps.values())), strict=True))
    for r in rows:
        assert r["difference"] == pytest.approx(
            student.paradigms[r["task"]] - teacher.paradigms[r["task"]]
        )
        assert r["p"] == pytest.approx(ps[r["task"]])
        assert r["significant"] == bool(qs[r["task"]] < 0.05)
    n_sig = sum(q < 0.05 for q in qs.values())
    assert 0 < n_sig < len(qs)  # the synthetic sweep lifts two groups only
    assert any(
        f"{n_sig} difference(s) survive Benjamini-Hochberg" in r for r in readings(demo_report)
    )


def test_timeline_busy_fraction_matches_a_per_second_grid(
    demo_sweep: Any, demo_report: Path
) -> None:
    timeline = report_data(demo_report)["timeline"]
    end = int(max(t.end_s or 0 for t in demo_sweep.trials))
    start = int(min(t.start_s for t in demo_sweep.trials))
    busy: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(end + 1, dtype=int))
    for t in demo_sweep.trials:
        busy[t.node][int(t.start_s) : int(t.end_s or end)] += 1
    covered = sum(int((b[start:end] > 0).sum()) for b in busy.values())
    assert timeline["workers"] == len(busy)
    assert timeline["busy_fraction"] == pytest.approx(covered / (len(busy) * (end - start)))
    assert timeline["peak_concurrency"] == max(int(sum(busy.values())[start:end].max()), 1)


def test_importances_from_the_stored_optuna_studies(demo_report: Path) -> None:
    data = report_data(demo_report)
    by_study: dict[tuple[str, str], float] = defaultdict(float)
    for r in data["importances"]:
        by_study[(r["study"], r["evaluator"])] += r["importance"]
    assert ("demo/students", "PED-ANOVA") in by_study
    assert all(total == pytest.approx(1.0) for total in by_study.values())
    try:
        import sklearn  # noqa: F401
    except ImportError:
        assert any("fANOVA" in n and "scikit-learn" in n for n in data["importance_notes"])
        assert any("fANOVA" in r and "scikit-learn" in r for r in readings(demo_report))
    else:
        assert ("demo/students", "fANOVA") in by_study


def test_methods_footer_names_seeds_hash_and_code_version(
    demo_sweep: Any, demo_report: Path
) -> None:
    text = visible_text(demo_report)
    assert "hash-demo" in text and "0.1.0+test" in text
    assert report_data(demo_report)["seeds"] == sorted({t.seed for t in demo_sweep.trials})


def test_report_is_self_contained(demo_report: Path) -> None:
    text = demo_report.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]+src=", text), "no script is fetched: the page opens offline"
    assert text.count("plotly.js v") <= 2  # plotly.js inlined once (its banner)
    assert "nan" not in visible_text(demo_report).lower().split()


def test_thin_data_says_what_cannot_be_concluded(thin_report: Path) -> None:
    data = report_data(thin_report)
    text = visible_text(thin_report)
    assert not re.search(r"\bnan\b", text.lower())
    assert all(t["p_value"] is None and t["note"] for t in data["tests"])
    joined = " ".join(readings(thin_report))
    assert all(cv["verdict"] == "inconclusive" for cv in data["verdicts"])
    assert "no seed repeats" in data["verdict_lines"][0]
    assert "no evidence of robustness" in joined
    assert "cannot be judged yet" in joined
    assert "importances need 3+ trials" in joined
    row = next(r for r in data["headline"] if r["group"] == "students")
    assert row["blimp_overall_iqm_low"] is None and "3+" in row["blimp_overall_note"]


def test_sweep_choice_and_user_errors(tmp_path: Path, write_thin_sweep: Any) -> None:
    url = f"sqlite:///{tmp_path / 'two.db'}"
    write_thin_sweep(url, "first")
    write_thin_sweep(url, "second")
    assert load_frames(url).sweep == "second"  # the most recently created
    with Store(url, upgrade=False) as store:  # a Store works as well as a URL
        frames = load_frames(store, "first")
    assert frames.storage_url is not None and len(frames.trials) == 2
    assert set(load_frames(url, "first").trials["sweep"]) == {"first"}
    out = tmp_path / "out" / "report.html"
    with pytest.raises(StoreError, match=r"no sweep named 'nope'.*first, second"):
        write_report(url, out, sweep="nope")
    assert not out.exists()
    with pytest.raises(StoreError, match="does not exist"):
        write_report(f"sqlite:///{tmp_path / 'missing.db'}", out)
    assert not (tmp_path / "missing.db").exists()


def test_analysis_imports_neither_torch_nor_ray(thin_store: str, tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; import analysis; "
        f"analysis.write_report({thin_store!r}, Path({str(tmp_path / 'r.html')!r})); "
        "bad = sorted(m for m in ('torch', 'ray', 'transformers') if m in sys.modules); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120)


def test_glue_means_per_group(demo_sweep: Any, demo_report: Path, glue_scores: Any) -> None:
    glue = {(r["group"], r["column"]): r for r in report_data(demo_report)["glue"]}
    for role in ("teacher", "student"):
        trials = demo_sweep.of("repeats", role)
        expected = np.mean([glue_scores(t)[("mrpc", "f1")] for t in trials])
        row = glue[(f"repeats:{role}", "glue_mrpc_f1")]
        assert row["mean"] == pytest.approx(expected) and row["n"] == len(trials)
    assert not any(group == "teachers" for group, _ in glue)  # only the repeats were fine-tuned
    assert any(r.startswith("Fine-tuned on (Super)GLUE") for r in readings(demo_report))


def test_glue_rows_show_and_flag_the_majority_class(
    demo_sweep: Any, demo_report: Path, glue_scores: Any
) -> None:
    from tests.analysis.conftest import GLUE_MAJORITY

    glue = {(r["group"], r["column"]): r for r in report_data(demo_report)["glue"]}
    flagged = []
    for role in ("teacher", "student"):
        trials = demo_sweep.of("repeats", role)
        for task, metric in (("mrpc", "accuracy"), ("mrpc", "f1"), ("rte", "accuracy")):
            baseline = GLUE_MAJORITY[(task, f"majority_{metric}")]
            below = sum(glue_scores(t)[(task, metric)] <= baseline + 1e-9 for t in trials)
            row = glue[(f"repeats:{role}", f"glue_{task}_{metric}")]
            assert row["majority"] == pytest.approx(baseline)
            assert (row["not_above"], row["n_majority"]) == (below, len(trials))
            if below:
                flagged.append(f"{task} · {metric} of {row['label']}: {below} of {len(trials)}")
    # The synthetic teachers' MRPC scores sit under always-"paraphrase"; RTE beats 0.5.
    assert len(flagged) == 4 and not any(f.startswith("rte") for f in flagged)
    assert not any("majority" in column for _, column in glue)  # baselines are not task rows
    reading = next(r for r in readings(demo_report) if r.startswith("Fine-tuned on"))
    assert "Fine-tunes not above it (⚑): " + "; ".join(flagged) in reading
    table = re.search(r"<table[^>]*data-table='glue'>.*?</table>", demo_report.read_text(), re.S)
    assert table and "<th>majority class</th>" in table.group(0)
    assert "<td>0.817</td>" in table.group(0) and "⚑ 3 of 3 not above" in table.group(0)


def test_writing_the_report_leaves_the_store_untouched(thin_store: str, tmp_path: Path) -> None:
    import sqlite3

    db = Path(thin_store.removeprefix("sqlite:///"))

    def content() -> str:
        # the logical content, WAL included: the file's bytes change when SQLite checkpoints
        with sqlite3.connect(db) as conn:
            return hashlib.sha256("\n".join(conn.iterdump()).encode()).hexdigest()

    before = content()
    write_report(thin_store, tmp_path / "report.html")
    assert content() == before


def test_a_best_checkpoint_is_judged_by_its_own_dev_loss() -> None:
    """Under `checkpoint: best` the handed-on epoch's dev loss (which chose it, and whose model
    test_loss and BLiMP scored) is the trial's dev_loss; the last epoch's is kept beside it."""
    import pandas as pd

    from analysis.load import with_contract_columns

    trials = pd.DataFrame(
        {
            "trial_id": [1, 2],
            "stage": ["teachers", "teachers"],
            "role": ["teacher", "teacher"],
            "dev_loss": [4.2, 4.0],  # the last epoch's
            "checkpoint_dev_loss": [3.9, None],  # trial 1 handed on an earlier, better epoch
        }
    )
    t = with_contract_columns(trials)
    assert t["dev_loss"].tolist() == [3.9, 4.0]
    assert t["last_dev_loss"].tolist() == [4.2, 4.0]
