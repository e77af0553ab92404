"""An Optuna search over dbn_best's family, scored as every candidate of run_selection.py was: mean
UAR over its six tasks on EMO-DB and SAVEE (two cross-corpus, four speaker folds), seeds 0 and 1.
EMOVO and URDU are never loaded. Run from a project whose features/ hold the real corpora:

    python reports/real-corpora/selection/search.py MINUTES [FEATURES_DIR]
    python reports/real-corpora/selection/search.py confirm TRIAL[,TRIAL...] SEEDS [FEATURES_DIR]

The second form refits the named trials' configurations (dbn_best: trial 0) on other seeds, the
same six tasks: a search's best score is the luckiest of many, so its winner is judged on fresh draws.

The study lives in .cache/selection-search.db (rerun to continue it); at the end every trial is
written to search_trials.csv beside this file. The first trial is dbn_best itself, so the sampler
starts from the configuration to beat.
"""
import sys

import optuna
import pandas as pd
from run_selection import FT, PRE, score

from crossemo.experiments.normalization import Normalization

STORAGE, STUDY = "sqlite:///.cache/selection-search.db", "dbn-selection"
DBN_BEST = {"layers": 2, "units": 512, "dropout": 0.5, "weight_decay": 1e-4, "finetune_learning_rate": 1e-3,
            "input_noise": 0.0, "batch_size": 32, "pretrain_epochs": 100, "pretrain_learning_rate": 1e-3}


def config(trial: optuna.Trial) -> dict:
    """A DBN like dbn_best (five members on one stack pretrained on the pool, early stopping on
    held-out speakers) whose sizes and regularisation the trial chooses."""
    layers = trial.suggest_int("layers", 1, 3)
    units = trial.suggest_categorical("units", [256, 512, 1024])
    finetune = {**FT,
                "dropout": trial.suggest_float("dropout", 0.2, 0.7),
                "weight_decay": trial.suggest_float("weight_decay", 1e-5, 1e-2, log=True),
                "learning_rate": trial.suggest_float("finetune_learning_rate", 3e-4, 3e-3, log=True),
                "input_noise": trial.suggest_float("input_noise", 0.0, 0.5),
                "batch_size": trial.suggest_categorical("batch_size", [16, 32, 64])}
    pretrain = {**PRE,
                "epochs": trial.suggest_categorical("pretrain_epochs", [30, 100, 300]),
                "learning_rate": trial.suggest_float("pretrain_learning_rate", 3e-4, 1e-2, log=True)}
    return dict(hidden=[units] * layers, pretrain_data="unlabeled", pretrain=pretrain, ensemble=5, finetune=finetune)


def objective(trial: optuna.Trial, features_dir: str) -> float:
    rows = score(f"trial{trial.number}", "dbn", config(trial), Normalization.SPEAKER, (0, 1), features_dir)
    for task, uar in rows.groupby("task").uar.mean().items():
        trial.set_user_attr(task, uar)
    return rows.uar.mean()


def confirm(numbers: list[int], seeds: list[int], features_dir: str) -> pd.DataFrame:
    study = optuna.load_study(storage=STORAGE, study_name=STUDY)
    return pd.concat([score(f"trial{n}", "dbn", config(optuna.trial.FixedTrial(study.trials[n].params)),
                            Normalization.SPEAKER, seeds, features_dir) for n in numbers], ignore_index=True)


if __name__ == "__main__" and sys.argv[1] == "confirm":
    numbers, seeds = [int(n) for n in sys.argv[2].split(",")], [int(s) for s in sys.argv[3].split(",")]
    rows = confirm(numbers, seeds, sys.argv[4] if len(sys.argv) > 4 else "features")
    rows.to_csv(f"{__file__.rsplit('/', 1)[0]}/search_confirm.csv", index=False)
    print(rows.groupby("name").agg(uar=("uar", "mean"), sec=("sec", "mean")).round(3).to_string())
    print(rows.pivot_table(index="name", columns="task", values="uar").round(3).to_string())
elif __name__ == "__main__":
    minutes, features_dir = float(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "features"
    study = optuna.create_study(
        storage=STORAGE, study_name=STUDY, direction="maximize",
        load_if_exists=True, sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=10))
    if not study.trials:
        study.enqueue_trial(DBN_BEST)
    study.optimize(lambda t: objective(t, features_dir), timeout=minutes * 60)
    table = study.trials_dataframe().sort_values("value", ascending=False)
    table.to_csv(f"{__file__.rsplit('/', 1)[0]}/search_trials.csv", index=False)
    print(table.drop(columns=["datetime_start", "datetime_complete"]).head(10).round(4).to_string())
