"""The scenario runner: every run in MLflow with filterable tags, crashes marked failed, seeded results."""

from __future__ import annotations

import json
import time

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch

from crossemo.errors import ConfigError
from crossemo.experiments.report import write_report
from crossemo.experiments.runner import ExperimentSettings, Runner
from crossemo.models.networks import DBNValence

from .conftest import TINY_MODELS, feature_table

TINY = TINY_MODELS


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # mlruns/artifacts is relative to the project root
    return f"sqlite:///{tmp_path}/mlflow.db"


def settings(store, **kw) -> ExperimentSettings:
    defaults = dict(
        models=("svm", "dbn_tiny"),
        seeds=(0,),
        fractions=(0.25,),
        tracking_uri=store,
        cache_dir=".cache/pretrained",
        log_models=True,
    )
    return ExperimentSettings(**{**defaults, **kw})


def test_runs_are_nested_and_filterable_in_mlflow(store):
    results = Runner("single_source", feature_table(), TINY, settings(store), progress=False).run()
    assert len(results) == 3 * 2 * 2  # 6 source-target pairs x 2 models
    assert results["uar"].between(0, 1).all()
    table = feature_table()  # a single-source test set is the whole target corpus: its commonest class' share
    shares = table.groupby("corpus")["valence"].agg(lambda v: v.value_counts(normalize=True).max())
    np.testing.assert_allclose(results["majority_rate"], shares[results["target"]].to_numpy())
    mlflow.set_tracking_uri(store)
    runs = mlflow.search_runs(
        experiment_names=["crossemo-single_source"],
        filter_string="tags.model = 'dbn_tiny' and tags.source = 'a' and tags.target = 'b'",
    )
    assert len(runs) == 1
    run = runs.iloc[0]
    assert run["status"] == "FINISHED" and run["tags.mlflow.parentRunId"]
    assert run["params.pretrain.epochs"] == "2" and run["params.finetune.max_epochs"] == "3"
    assert run["tags.git_commit"] and run["tags.corpora"] == "a,b,c"
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run["run_id"])}
    assert {"predictions.csv", "confusion_matrix.png"} <= artifacts
    # the logged UAR, recomputed from the run's own predictions: the mean of the two classes' recalls
    predictions = pd.read_csv(
        mlflow.artifacts.download_artifacts(run_id=run["run_id"], artifact_path="predictions.csv")
    )
    recalls = [(predictions.query("true == @c")["predicted"] == c).mean() for c in ("negative", "positive")]
    assert run["metrics.uar"] == pytest.approx(np.mean(recalls))
    assert results.query("model == 'dbn_tiny' and source == 'a' and target == 'b'")["uar"].item() == run["metrics.uar"]
    # A single-source model is fitted once and serves every target: its curves are on the run that fitted it.
    fitted = mlflow.search_runs(
        experiment_names=["crossemo-single_source"], filter_string="tags.model = 'dbn_tiny' and tags.source = 'a'"
    )
    trained = fitted[fitted["tags.model_reused_from"].isna()]
    assert len(trained) == 1 and set(fitted["tags.model_reused_from"].dropna()) == {trained["run_id"].iloc[0]}
    client = mlflow.MlflowClient()
    stored = {r: {a.path for a in client.list_artifacts(r)} for r in fitted["run_id"]}
    assert {r for r, paths in stored.items() if "model.joblib" in paths} == set(trained["run_id"])  # stored once
    assert len(client.get_metric_history(trained["run_id"].iloc[0], "finetune/val_uar")) >= 1
    # The stack every dbn_tiny fit of seed 0 shares was pretrained ahead of them, in a run of its own.
    pretraining = mlflow.search_runs(
        experiment_names=["crossemo-single_source"], filter_string="tags.stage = 'pretraining'"
    )
    assert len(pretraining) == 1 and pretraining["tags.model"].item() == "dbn_tiny"
    assert pretraining["tags.mlflow.parentRunId"].item() == trained["tags.mlflow.parentRunId"].item()
    assert len(client.get_metric_history(pretraining["run_id"].item(), "pretrain/layer0/reconstruction_error")) == 2
    assert not client.get_metric_history(trained["run_id"].iloc[0], "pretrain/layer0/reconstruction_error")


def test_a_crash_marks_its_run_failed(store, monkeypatch):
    # A bug inside a fit (a bad setting would be refused when the model is built, before any run)
    def crash(self, *args):
        raise RuntimeError("a bug inside a fit")

    monkeypatch.setattr(DBNValence, "_fit", crash)
    models = {"dbn_tiny": {**TINY["dbn_tiny"], "pretrain_data": "train"}}  # no pool: no pretraining run first
    with pytest.raises(RuntimeError, match="a bug inside a fit"):
        Runner("leave_one_out", feature_table(), models, settings(store, models=("dbn_tiny",)), progress=False).run()
    mlflow.set_tracking_uri(store)
    statuses = set(mlflow.search_runs(experiment_names=["crossemo-leave_one_out"])["status"])
    assert statuses == {"FAILED"}


def test_a_bad_setting_is_refused_before_any_run_starts(store):
    broken = {"bad": {**TINY["dbn_tiny"], "finetune": {"max_epochs": 1, "nonsense": 1}}}
    with pytest.raises(ConfigError, match="models.bad: finetune: got an unexpected keyword argument 'nonsense'"):
        Runner("leave_one_out", feature_table(), broken, settings(store, models=("bad",)), progress=False).run()
    mlflow.set_tracking_uri(store)
    assert mlflow.search_runs(search_all_experiments=True).empty


def test_same_seed_same_metrics(store):
    first = Runner("within", feature_table(), TINY, settings(store), progress=False).run()
    again = Runner("within", feature_table(), TINY, settings(store, reuse_fits=False), progress=False).run()
    metrics = ["accuracy", "uar", "macro_f1"]
    pd.testing.assert_frame_equal(first[metrics], again[metrics])
    assert set(first["protocol"]) == {"random", "speaker"}


def test_report_writes_metrics_figures_and_paper_comparison(store, tmp_path):
    table = feature_table()
    frames = [
        Runner(s, table, TINY, settings(store, seeds=(0, 1)), progress=False).run()
        for s in ("within", "single_source", "target_fraction", "multi_source", "leave_one_out")
    ]
    results = pd.concat(frames)
    headline = write_report(results, tmp_path / "reports")
    assert headline == json.loads((tmp_path / "reports/metrics.json").read_text())
    detail = json.loads((tmp_path / "reports/metrics_detail.json").read_text())
    entry = detail["within"]["random"]["dbn_tiny"]["a->a"]
    assert entry["seeds"] == 2 and entry["uar_ci95_low"] <= entry["uar_mean"] <= entry["uar_ci95_high"]
    assert "a+b->c" in detail["leave_one_out"]["leave_one_out"]["svm"]
    # the headline: each scenario's models averaged over its cells, and the best one's margin over the SVM
    loo = results[results["scenario"] == "leave_one_out"]
    assert headline["leave_one_out"]["svm"]["uar"] == round(loo[loo["model"] == "svm"]["uar"].mean(), 4)
    margin = loo.groupby("model")["uar"].mean()
    assert headline["leave_one_out"]["best_vs_svm_uar"] == pytest.approx(
        margin.drop("svm").max() - margin["svm"], abs=1e-4
    )
    assert sum(len(v) if isinstance(v, dict) else 1 for m in headline.values() for v in m.values()) <= 60
    figures = {p.name for p in (tmp_path / "reports/figures").iterdir()}
    assert {
        "fig1_within.png",
        "fig2_single_source.png",
        "fig3_target_fraction.png",
        "fig4a_multi_source.png",
        "fig4b_leave_one_out.png",
        "cross_corpus_heatmap.png",
    } <= figures
    report = (tmp_path / "reports/report.md").read_text()
    assert "paper DBN acc." in report and "beats eGeMAPS + svm in UAR in" in report


def pretraining_runs(store, runs: pd.DataFrame) -> list[str]:
    """The runs that pretrained a stack (a warm-up, or a fit that found none stored): they carry its curves."""
    client = mlflow.MlflowClient(store)
    return [r for r in runs["run_id"] if client.get_metric_history(r, "pretrain/layer0/reconstruction_error")]


def test_two_workers_give_the_same_results_and_pretrain_each_stack_once(store):
    serial = Runner("single_source", feature_table(), TINY, settings(store), progress=False).run()
    fresh = dict(workers=2, cache_dir=".cache/other", reuse_fits=False)  # fit again, on two workers
    parallel = Runner("single_source", feature_table(), TINY, settings(store, **fresh), progress=False).run()
    columns = ["model", "source", "target", "seed", "accuracy", "uar", "macro_f1", "confusion"]
    pd.testing.assert_frame_equal(serial[columns], parallel[columns])
    mlflow.set_tracking_uri(store)
    runs = mlflow.search_runs(experiment_names=["crossemo-single_source"])
    children = runs[runs["run_id"].isin(parallel["run_id"])]
    parents = set(children["tags.mlflow.parentRunId"])
    assert len(parents) == 1 and runs.loc[runs["run_id"].isin(parents), "status"].item() == "FINISHED"
    # Three DBN fits (one per source) share the one stack of seed 0: it is pretrained once. The
    # warm-up and the first fit start together on the two workers; whichever takes the stack's lock
    # first pretrains it (usually the warm-up, under load sometimes the fit), the other finds it stored.
    under_parent = runs[runs["tags.mlflow.parentRunId"].isin(parents)]
    assert (under_parent["tags.stage"] == "pretraining").sum() == 1  # the warm-up ran
    assert len(pretraining_runs(store, under_parent)) == 1


def test_a_stack_several_fits_share_is_pretrained_once_ahead_of_them_whatever_the_pool(store):
    # unlabeled: target pretrains on the test corpus' rows: the two fits testing on a corpus (one per
    # other source) share its stack, so each of the three stacks gets a warm-up and is pretrained once
    s = settings(store, models=("dbn_tiny",), workers=2, unlabeled="target")
    assert len(Runner("single_source", feature_table(), TINY, s, progress=False).run()) == 6
    runs = mlflow.search_runs(experiment_names=["crossemo-single_source"])
    warmups = runs[runs["tags.stage"] == "pretraining"]
    assert len(warmups) == 3
    assert len(pretraining_runs(store, runs)) == 3


def test_a_stack_only_one_fit_needs_gets_no_warm_up(store):
    # transfer a+b -> c: its one fit without c's audio pretrains on a and b alone, a stack nothing else uses
    s = settings(store, models=("dbn_tiny",), train_corpora=("a", "b"), test_corpora=("c",), target_audio=("unseen",))
    Runner("transfer", feature_table(), TINY, s, progress=False).run()
    runs = mlflow.search_runs(experiment_names=["crossemo-transfer"])
    assert "tags.stage" not in runs or not (runs["tags.stage"] == "pretraining").any()
    assert runs["tags.mlflow.parentRunId"].notna().sum() == 1


def test_two_workers_carry_each_jobs_own_features_under_training_set_normalisation(store):
    train_only = dict(normalization="train", models=("svm",), reuse_fits=False)
    serial = Runner("leave_one_out", feature_table(), TINY, settings(store, **train_only), progress=False).run()
    parallel = Runner(
        "leave_one_out", feature_table(), TINY, settings(store, workers=2, **train_only), progress=False
    ).run()
    pd.testing.assert_frame_equal(serial[["target", "uar", "confusion"]], parallel[["target", "uar", "confusion"]])


def test_the_stack_cache_builds_a_stack_once_while_others_wait(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from crossemo.models.nets import RBMStack
    from crossemo.models.stacks import StackCache

    builds = []

    def slow_build():
        builds.append(1)
        time.sleep(0.5)  # long enough that the other caller arrives while this one builds
        return RBMStack(4, (3,))

    cache = StackCache(tmp_path)
    with ThreadPoolExecutor(2) as pool:
        stacks = list(pool.map(lambda _: cache.get_or_build("k", 4, (3,), slow_build), range(2)))
    assert len(builds) == 1
    assert torch.equal(stacks[0].layers[0].weight, stacks[1].layers[0].weight)


def test_compare_pairs_configurations_and_seeds_and_gives_the_change_an_interval():
    from crossemo.experiments.report import compare, comparison_markdown

    def results(uars, models=("dbn", "svm")):
        rows = [
            {
                "scenario": "within",
                "protocol": "random",
                "model": m,
                "source": "a",
                "target": "a",
                "fraction": np.nan,
                "seed": seed,
                "accuracy": u,
                "uar": u,
                "macro_f1": u,
                "majority_rate": 0.5,
            }
            for m in models
            for seed, u in enumerate(uars)
        ]
        return pd.DataFrame(rows)

    before = results([0.5, 0.7, 0.6])
    after = pd.concat([results([0.7, 0.8], models=("dbn",)), results([0.9], models=("mlp",))])
    compared = compare(before, after)
    assert list(compared["model"]) == ["dbn"]  # svm only before, mlp only after: not compared
    # seed 2 ran only before: left out of both means, so each seed's change is its own run's
    assert compared["before"].item() == pytest.approx(0.6) and compared["change"].item() == pytest.approx(0.15)
    assert compared["seeds"].item() == 2
    # per-seed changes 0.2 and 0.1: mean 0.15, half-width t(0.975, 1) * 0.0707 / sqrt(2) = 0.635
    low, high = compared[["change_ci_low", "change_ci_high"]].iloc[0]
    assert (low, high) == (pytest.approx(0.15 - 0.6353, abs=1e-3), pytest.approx(0.15 + 0.6353, abs=1e-3))
    row = "| within | random | dbn | a | a | 60.0 | 75.0 | +15.0 | [-48.5, +78.5] |"
    assert row in comparison_markdown(compared, "old", "new")
    shares = [results([0.5], models=("dbn",)).assign(scenario="target_fraction", fraction=f) for f in (0.1, 0.4)]
    table = comparison_markdown(compare(pd.concat(shares), pd.concat(shares)), "old", "new")
    assert "| dbn | a | a | 10% | 50.0 | 50.0 | +0.0 | n/a |" in table and "| 40% |" in table  # one seed: no interval


def test_compare_pairs_two_configurations_of_one_file_with_pair(tmp_path, capsys):
    """`crossemo compare F F --pair svm_coral=svm`: the method against none, cell for cell and seed for seed."""
    from .conftest import cli_status

    rows = [
        {
            "scenario": "leave_one_out",
            "protocol": "leave_one_out",
            "model": m,
            "source": "rest",
            "target": t,
            "fraction": np.nan,
            "seed": seed,
            "fold": 0,
            "accuracy": u,
            "uar": u,
            "macro_f1": u,
            "majority_rate": 0.5,
        }
        for t, base in (("a", 0.6), ("b", 0.7))
        for seed in (0, 1, 2)
        for m, u in (("svm", base + 0.01 * seed), ("svm_coral", base + 0.05 + 0.01 * seed), ("mlp", 0.1))
    ]
    path = tmp_path / "loo.parquet"
    pd.DataFrame(rows).to_parquet(path)
    assert cli_status(["compare", str(path), str(path), "--pair", "svm_coral=svm"]) == 0
    out = capsys.readouterr().out
    assert "| leave_one_out | leave_one_out | svm_coral vs svm | rest | a | 61.0 | 66.0 | +5.0 | [+5.0, +5.0] |" in out
    assert "| b | 71.0 | 76.0 | +5.0 |" in out and "mlp" not in out
    assert cli_status(["compare", str(path), str(path), "--pair", "svm_coral"]) == 1
    assert "give AFTER_MODEL=BEFORE_MODEL" in capsys.readouterr().err


def test_a_comparison_sums_up_per_group_how_many_cells_moved_beyond_the_seeds():
    from crossemo.experiments.report import comparison_by

    compared = pd.DataFrame(
        {
            "model": ["dbn", "dbn", "dbn", "svm"],
            "before": [0.60, 0.70, 0.50, 0.60],
            "after": [0.70, 0.60, 0.52, 0.60],
            "change": [0.10, -0.10, 0.02, 0.0],
            "change_ci_low": [0.05, -0.20, -0.01, np.nan],  # above 0, below 0, holding 0; one seed: no interval
            "change_ci_high": [0.15, -0.02, 0.05, np.nan],
        }
    )
    table = comparison_by(compared, ["model"])
    dbn = table.loc["dbn"]
    assert (dbn["cells"], dbn["above_0"], dbn["below_0"], dbn["interval_holds_0"]) == (3, 1, 1, 1)
    assert dbn["before"] == pytest.approx(60.0) and dbn["change"] == pytest.approx(0.6667, abs=1e-4)  # points
    assert (table.loc["svm", ["cells", "above_0", "below_0", "interval_holds_0"]] == [1, 0, 0, 0]).all()


def test_a_scenario_change_is_tested_over_seeds_and_untouched_runs_are_counted():
    from crossemo.experiments.report import identical_runs, scenario_changes

    cells = [(m, t, seed) for m in ("dbn", "svm") for t in ("x", "y") for seed in (0, 1, 2)]

    def runs(uars):  # one scenario, two cells (targets) x three seeds per model
        frame = pd.DataFrame(cells, columns=["model", "target", "seed"])
        return frame.assign(scenario="loo", protocol="loo", source="s", fraction=np.nan, fold=0, uar=uars)

    before = runs([0.6] * 12)
    lifted = [0.6 + (0.01 * (seed + 1) if m == "dbn" else 0) for m, _, seed in cells]
    changes = scenario_changes(before, runs(lifted)).set_index("model")
    # dbn: seeds moved by 1, 2, 3 points (each the mean over its two cells): mean 2, t(2) interval
    assert changes.loc["dbn", "change"] == pytest.approx(2.0)
    assert changes.loc["dbn", "ci_low"] == pytest.approx(2.0 - 4.303 * 1 / np.sqrt(3), abs=1e-3)
    assert changes.loc["svm", "change"] == 0
    same = identical_runs(before, runs(lifted))
    assert same.loc["dbn", "loo"] == "0 of 6" and same.loc["svm", "loo"] == "6 of 6"


def test_one_seed_has_no_interval_rather_than_a_zero_width_one(store, tmp_path):
    results = Runner("leave_one_out", feature_table(), TINY, settings(store, models=("svm",)), progress=False).run()
    write_report(results, tmp_path / "reports")
    entry = json.loads((tmp_path / "reports/metrics_detail.json").read_text())["leave_one_out"]["leave_one_out"]
    cell = entry["svm"]["a+b->c"]
    assert cell["seeds"] == 1 and cell["uar_ci95_low"] is None and cell["uar_ci95_high"] is None
    assert cell["uar_mean"] == round(results.loc[results["target"] == "c", "uar"].item(), 4)
    report = (tmp_path / "reports/report.md").read_text()
    assert f"{100 * cell['uar_mean']:.1f} [n/a]" in report


def test_parent_runs_carry_summary_metrics_and_the_dvc_experiment(store, monkeypatch):
    monkeypatch.setenv("DVC_EXP_NAME", "wider-nets")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "abc123")
    results = Runner("leave_one_out", feature_table(), TINY, settings(store), progress=False).run()
    mlflow.set_tracking_uri(store)
    runs = mlflow.search_runs(
        experiment_names=["crossemo-leave_one_out"], filter_string="tags.dvc_experiment = 'wider-nets'"
    )
    parent = runs[runs["tags.mlflow.parentRunId"].isna()]
    pretraining = runs[runs["tags.stage"] == "pretraining"]  # dbn_tiny's stack for seed 0, ahead of its fits
    assert len(runs) == len(results) + len(pretraining) + 1 and len(parent) == 1 and len(pretraining) == 1
    parent = parent.iloc[0]
    assert parent["tags.dvc_baseline_rev"] == "abc123"
    kind = mlflow.get_experiment_by_name("crossemo-leave_one_out").tags["mlflow.experimentKind"]
    assert kind == "custom_model_development"  # the UI opens on the runs table, not the GenAI overview
    for model in ("svm", "dbn_tiny"):
        runs_of = results[results["model"] == model]
        assert parent[f"metrics.uar/{model}"] == pytest.approx(runs_of["uar"].mean())
        assert parent[f"metrics.accuracy/{model}"] == pytest.approx(runs_of["accuracy"].mean())
        assert parent[f"metrics.uar/{model}/c"] == pytest.approx(runs_of.loc[runs_of["target"] == "c", "uar"].item())


def test_the_report_is_the_same_whatever_the_commit_or_experiment(store, tmp_path, monkeypatch):
    """A fresh clone's `dvc repro` must reproduce the committed dvc.lock, report.md's hash included."""
    import crossemo.experiments.tracking

    results = Runner("leave_one_out", feature_table(), TINY, settings(store, models=("svm",)), progress=False).run()
    real = crossemo.experiments.tracking.provenance_tags
    made = []
    for commit, experiment in (("aaa", None), ("bbb+dirty", "wide-nets")):
        tags = {**real(["a", "b", "c"]), "git_commit": commit}
        if experiment:
            tags["dvc_experiment"] = experiment
        monkeypatch.setattr(crossemo.experiments.tracking, "provenance_tags", lambda corpora, tags=tags: tags)
        write_report(results, tmp_path / commit)
        made.append((tmp_path / commit / "report.md").read_bytes())
    assert made[0] == made[1] and b"svm" in made[0]


def test_the_best_dbn_is_held_against_the_svm_cell_by_cell_and_every_loss_is_named():
    from crossemo.experiments.metrics import summarize
    from crossemo.experiments.report import KEYS, against_baseline, paper_and_best_dbn, scenario_means

    uars = {  # (model, target) -> UAR per seed
        ("dbn_best", "a"): [0.70, 0.72, 0.71],
        ("svm", "a"): [0.65, 0.65, 0.65],
        ("dbn_best", "b"): [0.50, 0.70, 0.60],  # wide: half-width 24.8 points over three seeds
        ("svm", "b"): [0.64, 0.64, 0.64],
        ("dbn_paper", "a"): [0.6, 0.6, 0.6],
        ("dbn_paper", "b"): [0.6, 0.6, 0.6],
    }
    rows = [
        {
            "scenario": "leave_one_out",
            "protocol": "leave_one_out",
            "model": model,
            "source": "x",
            "target": target,
            "fraction": 0.0,
            "seed": seed,
            "accuracy": u,
            "uar": u,
            "macro_f1": u,
            "majority_rate": 0.5,
        }
        for (model, target), values in uars.items()
        for seed, u in enumerate(values)
    ]
    summary = summarize(pd.DataFrame(rows), KEYS)
    assert paper_and_best_dbn(sorted(summary["model"].unique())) == ("dbn_paper", "dbn_best")
    assert paper_and_best_dbn(["dbn_demo", "svm"]) == ("dbn_demo", "dbn_demo")
    notes = against_baseline(summary, "dbn_best")
    assert notes[0] == "dbn_best against svm: UAR higher in 1 of 2 cells, mean difference +1.0 points."
    assert notes[1] == "dbn_best loses to svm in: leave_one_out/leave_one_out x->b by 4.0."
    assert (
        notes[2].startswith("dbn_best's 95% interval half-width") and "above 5 in 1 of 2: leave_one_out b." in notes[2]
    )
    assert "| leave_one_out | leave_one_out | **65.5** | 60.0 | 64.5 |" in scenario_means(summary)
