"""Each adaptation method's settings, chosen on the training corpora alone: EMO-DB and SAVEE (the
tuning corpora dbn_best was chosen on), never EMOVO or URDU. Tasks: EMO-DB -> SAVEE and SAVEE ->
EMO-DB, the test corpus' rows given unlabeled (their labels are only scored); per-speaker statistics
as in the study. Run from a project whose features/ hold the real corpora:

    python reports/real-corpora/adaptation/choose_settings.py CANDIDATE[,CANDIDATE...] SEEDS [FEATURES_DIR]

CANDIDATEs are the names in CANDIDATES below; SEEDS comma-separated (0,1 to choose; 2,3 to confirm).
Rows are appended to choose_runs.csv beside this script.
"""

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from joblib import Parallel, delayed

from crossemo.data.features import labelled_rows
from crossemo.data.speakers import speaker_keys
from crossemo.experiments.metrics import valence_scores
from crossemo.experiments.normalization import Normalization, normalize
from crossemo.models.catalog import model_from_config
from crossemo.models.stacks import StackCache

HERE = Path(__file__).parent
PARAMS = yaml.safe_load((HERE.parents[2] / "params.yaml").read_text())["models"]
DBN, SVM = PARAMS["dbn_best"], {"model": "svm"}
CANDIDATES = {
    "svm": SVM,
    "svm_coral": {**SVM, "adaptation": "coral"},
    "svm_st20": {**SVM, "adaptation": "self_training", "self_training": {"rounds": 2, "share": 0.2}},
    "svm_st40": {**SVM, "adaptation": "self_training", "self_training": {"rounds": 2, "share": 0.4}},
    "svm_st80": {**SVM, "adaptation": "self_training", "self_training": {"rounds": 2, "share": 0.8}},
    "dbn_best": DBN,
    "dbn_coral": {**DBN, "adaptation": "coral"},
    "dbn_dann01": {**DBN, "adaptation": "dann", "dann": {"weight": 0.1}},
    "dbn_dann03": {**DBN, "adaptation": "dann", "dann": {"weight": 0.3}},
    "dbn_dann10": {**DBN, "adaptation": "dann", "dann": {"weight": 1.0}},
    "dbn_st20": {**DBN, "adaptation": "self_training", "self_training": {"rounds": 2, "share": 0.2}},
    "dbn_st40": {**DBN, "adaptation": "self_training", "self_training": {"rounds": 2, "share": 0.4}},
}
TASKS = (("emodb", "savee"), ("savee", "emodb"))


def rows(features_dir: str):
    table = pd.concat([pd.read_parquet(f"{features_dir}/{c}.parquet") for c in ("emodb", "savee")], ignore_index=True)
    table, raw = labelled_rows(table)
    x = normalize(raw, table, None, Normalization.SPEAKER)
    return table, x


def run(name: str, seed: int, task: int, features_dir: str) -> dict:
    torch.set_num_threads(1)
    table, x = rows(features_dir)
    y, speakers, corpus = table["valence"].to_numpy(), speaker_keys(table).to_numpy(), table["corpus"].to_numpy()
    source, target = TASKS[task]
    train, test = np.flatnonzero(corpus == source), np.flatnonzero(corpus == target)
    model = model_from_config(CANDIDATES, name, seed=seed, stack_store=StackCache(".cache/adaptation-stacks"))
    start = time.time()
    model.fit(x[train], y[train], groups=speakers[train], unlabeled=x[test])  # the target's rows, label-free
    uar = valence_scores(y[test], model.predict(x[test]))["uar"]
    return dict(name=name, seed=seed, task=f"{source}->{target}", uar=uar, sec=time.time() - start)


if __name__ == "__main__":
    names, seeds = sys.argv[1].split(","), [int(s) for s in sys.argv[2].split(",")]
    features_dir = sys.argv[3] if len(sys.argv) > 3 else "features"
    work = [(n, s, t) for n in names for s in seeds for t in range(len(TASKS))]
    done = Parallel(n_jobs=2, verbose=5)(delayed(run)(n, s, t, features_dir) for n, s, t in work)
    frame = pd.DataFrame(done)
    out = HERE / "choose_runs.csv"
    frame.to_csv(out, mode="a", header=not out.exists(), index=False)
    print(frame.groupby("name", sort=False)[["uar", "sec"]].mean().mul([100, 1]).round(1).to_string())
