"""The adaptation study: leave one corpus out and transfer with the target's audio used, on the four
real corpora, each model with `none` and each method that applies to it, seeds 0-2. The target
corpus' rows are the fits' unlabeled rows (`experiments.unlabeled: target`); per-speaker statistics
as in the study. Run in a project whose features/ hold the real corpora:

    python reports/real-corpora/adaptation/run_study.py [MODEL,MODEL...]

MODELs are configurations of this checkout's params.yaml, or the variants OTHERS built below
(default: all of STUDY; `others` for OTHERS). Runs go to
mlruns/adaptation.db (fits reused when run again); the results to leave_one_out.parquet and
transfer.parquet beside this script, a model's earlier rows replaced by its new ones.
"""

import sys
from pathlib import Path

import pandas as pd
import yaml

from crossemo.experiments.runner import Runner, load_features
from crossemo.experiments.settings import ExperimentSettings

HERE = Path(__file__).parent
MODELS = yaml.safe_load((HERE.parents[2] / "params.yaml").read_text())["models"]
STUDY = (
    "svm", "svm_coral", "svm_self_training",
    "dbn_best", "dbn_best_coral", "dbn_best_dann", "dbn_best_self_training",
)
# The study's other models with the settings chosen for svm and dbn_best (carried over, not chosen
# per model): CORAL and self-training for every model, DANN for the networks.
CHOSEN = {method: {k: v for k, v in MODELS[f"svm_{method}"].items() if k != "model"} for method in ("coral", "self_training")}
CHOSEN["dann"] = {k: MODELS["dbn_best_dann"][k] for k in ("adaptation", "dann")}
for base, methods in {"svm_cv": ("coral", "self_training"), "sae_svm": ("coral", "self_training"),
                      "mlp_paper": ("coral", "dann", "self_training")}.items():
    for method in methods:
        MODELS[f"{base}_{method}"] = {**MODELS[base], **CHOSEN[method]}
OTHERS = ("svm_cv", "svm_cv_coral", "svm_cv_self_training", "sae_svm", "sae_svm_coral", "sae_svm_self_training",
          "mlp_paper", "mlp_paper_coral", "mlp_paper_dann", "mlp_paper_self_training")
CORPORA = ["emodb", "savee", "emovo", "urdu"]
SCENARIOS = {
    "leave_one_out": {},
    "transfer": {"train_corpora": ("emodb", "savee"), "test_corpora": ("emovo", "urdu"), "target_audio": ("used",)},
}


def run(models: tuple[str, ...]) -> None:
    table = load_features(CORPORA, "features")
    for scenario, own in SCENARIOS.items():
        settings = ExperimentSettings(
            models=models,
            seeds=(0, 1, 2),
            normalization="speaker",
            unlabeled="target",
            tracking_uri="sqlite:///mlruns/adaptation.db",
            cache_dir=".cache/pretrained",
            workers=2,
            **own,
        )
        results = Runner(scenario, table, MODELS, settings).run()
        out = HERE / f"{scenario}.parquet"
        if out.exists():  # keep the other models' rows
            earlier = pd.read_parquet(out)
            results = pd.concat([earlier[~earlier["model"].isin(models)], results], ignore_index=True)
        results.to_parquet(out, index=False)
        print(scenario, results.groupby("model", sort=False)["uar"].mean().mul(100).round(1).to_dict())


if __name__ == "__main__":
    chosen = sys.argv[1] if len(sys.argv) > 1 else ""
    run(tuple(OTHERS) if chosen == "others" else tuple(chosen.split(",")) if chosen else STUDY)
