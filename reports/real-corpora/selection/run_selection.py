"""How dbn_best was chosen: candidate configurations scored on EMO-DB and SAVEE alone (the tuning
corpora), never on EMOVO or URDU. Tasks: EMO-DB -> SAVEE, SAVEE -> EMO-DB, and four speaker-grouped
folds of both together; two seeds each; score: mean UAR. Run from a project whose features/ hold the
real corpora (`make real`'s features stage):

    python reports/real-corpora/selection/run_selection.py NAME[,NAME...] corpus|speaker[,...] [FEATURES_DIR] [SEEDS]

SEEDS (comma-separated) defaults to 0,1, the seeds every candidate was chosen on.

It writes NAMEs_NORMs.csv beside itself (selection_runs.csv holds every row of the session's runs).
"""
import functools
import sys
import time

import numpy as np
import pandas as pd
import torch
from joblib import Parallel, delayed
from sklearn.model_selection import GroupKFold

from crossemo.data.features import labelled_rows
from crossemo.data.speakers import speaker_keys
from crossemo.experiments.metrics import valence_scores
from crossemo.experiments.normalization import Normalization, normalize
from crossemo.models.catalog import make_model
from crossemo.models.stacks import StackCache

STACKS = ".cache/selection-stacks"


@functools.cache
def corpora(features_dir="features"):
    """EMO-DB and SAVEE's labelled rows, raw features, labels, speakers and the six tasks."""
    table = pd.concat([pd.read_parquet(f"{features_dir}/{c}.parquet") for c in ("emodb", "savee")], ignore_index=True)
    table, raw = labelled_rows(table)
    y = table["valence"].to_numpy(); spk = speaker_keys(table).to_numpy(); corpus = table["corpus"].to_numpy()
    tasks = [(f"{a}->{b}", np.flatnonzero(corpus == a), np.flatnonzero(corpus == b))
             for a, b in (("emodb", "savee"), ("savee", "emodb"))]
    for i, (tr, te) in enumerate(GroupKFold(4).split(raw, y, spk)):
        tasks.append((f"spk{i}", tr, te))
    return table, raw, y, spk, tasks


def run(name, kind, params, norm, seed, task_index, features_dir="features"):
    torch.set_num_threads(1)
    table, raw, y, spk, tasks = corpora(features_dir)
    x = normalize(raw, table, None, norm)
    label, tr, te = tasks[task_index]
    # stacks kept in a folder of their own: fits of the same pool and seed pretrain each once
    runtime = {"stack_store": StackCache(STACKS)} if kind == "dbn" else {}
    m = make_model(kind, seed=seed, **params, **runtime)
    pool = x if getattr(m, "needs_unlabeled_pool", False) else None
    t = time.time()
    m.fit(x[tr], y[tr], groups=spk[tr], unlabeled=pool)
    return dict(name=name, norm=str(norm), seed=seed, task=label, uar=valence_scores(y[te], m.predict(x[te]))["uar"], sec=time.time() - t)


def score(name, kind, params, norm, seeds, features_dir="features"):
    """One row per seed and task: the candidate fitted and tested on every task, two processes."""
    jobs = [(name, kind, params, norm, seed, task, features_dir) for seed in seeds for task in range(6)]
    return pd.DataFrame(Parallel(n_jobs=2)(delayed(run)(*job) for job in jobs))

FT = dict(learning_rate=0.001, max_epochs=200, min_epochs=30, patience=30, batch_size=32, validation_fraction=0.2)
PRE = dict(learning_rate=0.001, epochs=100, batch_size=64, momentum=0.9)
PAPER_PRE = dict(learning_rate=0.001, epochs=500, batch_size=256, momentum=0.9, weight_decay=0.0002, precision="bf16-mixed")
cands = {
  "svm": ("svm", {}),
  "svm_cv": ("svm_cv", {}),
  "mlp256": ("mlp", dict(hidden=[256, 256], finetune=FT)),
  "mlp256_reg": ("mlp", dict(hidden=[256, 256], finetune={**FT, "dropout": 0.3, "weight_decay": 1e-4, "input_noise": 0.3})),
  "dbn256_reg": ("dbn", dict(hidden=[256, 256], pretrain_data="unlabeled", pretrain=PRE, finetune={**FT, "dropout": 0.3, "weight_decay": 1e-4, "input_noise": 0.3})),
  "dbn256_reg_e5": ("dbn", dict(hidden=[256, 256], pretrain_data="unlabeled", pretrain=PRE, ensemble=5, finetune={**FT, "dropout": 0.3, "weight_decay": 1e-4, "input_noise": 0.3})),
  "mlp256_reg_e5": ("mlp", dict(hidden=[256, 256], ensemble=5, finetune={**FT, "dropout": 0.3, "weight_decay": 1e-4, "input_noise": 0.3})),
  "mlp256_e5": ("mlp", dict(hidden=[256, 256], ensemble=5, finetune=FT)),
  "mlp64_lr": ("mlp", dict(hidden=[64], finetune={**FT, "learning_rate": 0.003, "weight_decay": 1e-3, "min_epochs": 60})),
  "mlp1000_long": ("mlp", dict(hidden=[1000, 1000], finetune={**FT, "min_epochs": 100, "patience": 50, "dropout": 0.5})),
  "dbn256": ("dbn", dict(hidden=[256, 256], pretrain_data="unlabeled", pretrain=PRE, finetune=FT)),
  "dbn1000_e5": ("dbn", dict(hidden=[1000, 1000], pretrain_data="unlabeled", pretrain=PRE, ensemble=5, finetune={**FT, "dropout": 0.5})),
  "dbn256_pre300": ("dbn", dict(hidden=[256, 256], pretrain_data="unlabeled", pretrain={**PRE, "epochs": 300, "learning_rate": 0.003}, finetune=FT)),
  "dbn256_ftlow": ("dbn", dict(hidden=[256, 256], pretrain_data="unlabeled", pretrain=PRE, finetune={**FT, "learning_rate": 0.0003, "min_epochs": 60, "patience": 40})),
  "dbn512_e5_do": ("dbn", dict(hidden=[512, 512], pretrain_data="unlabeled", pretrain=PRE, ensemble=5, finetune={**FT, "dropout": 0.5, "weight_decay": 1e-4})),
  "dbn256x3_e5": ("dbn", dict(hidden=[256, 256, 256], pretrain_data="unlabeled", pretrain=PRE, ensemble=5, finetune={**FT, "dropout": 0.3, "input_noise": 0.3})),
  "dbn512_e9_do": ("dbn", dict(hidden=[512, 512], pretrain_data="unlabeled", pretrain=PRE, ensemble=9, finetune={**FT, "dropout": 0.5, "weight_decay": 1e-4})),
  "dbn512_e5_do_n": ("dbn", dict(hidden=[512, 512], pretrain_data="unlabeled", pretrain=PRE, ensemble=5, finetune={**FT, "dropout": 0.5, "weight_decay": 1e-4, "input_noise": 0.3})),
  "dbn512x3_e5_do": ("dbn", dict(hidden=[512, 512, 512], pretrain_data="unlabeled", pretrain=PRE, ensemble=5, finetune={**FT, "dropout": 0.5, "weight_decay": 1e-4})),
  # a later probe: do the members gain from training on more of the training speakers?
  "dbn512_e5_do_v10": ("dbn", dict(hidden=[512, 512], pretrain_data="unlabeled", pretrain=PRE, ensemble=5, finetune={**FT, "dropout": 0.5, "weight_decay": 1e-4, "validation_fraction": 0.1})),
  # a later probe: each member from a stack pretrained with its own seed (member_stacks: own)
  "dbn512_e5_do_own": ("dbn", dict(hidden=[512, 512], pretrain_data="unlabeled", pretrain=PRE, ensemble=5, member_stacks="own", finetune={**FT, "dropout": 0.5, "weight_decay": 1e-4})),
  # a later probe: each member stops on a whole training corpus it does not train on (validate_on: corpus)
  "dbn512_e5_do_vc": ("dbn", dict(hidden=[512, 512], pretrain_data="unlabeled", pretrain=PRE, ensemble=5, validate_on="corpus", finetune={**FT, "dropout": 0.5, "weight_decay": 1e-4})),
  # a later probe: each member's weights averaged over its epochs from the 10th / 30th on (finetune.swa_start)
  "dbn512_e5_do_swa10": ("dbn", dict(hidden=[512, 512], pretrain_data="unlabeled", pretrain=PRE, ensemble=5, finetune={**FT, "dropout": 0.5, "weight_decay": 1e-4, "swa_start": 10})),
  "dbn512_e5_do_swa30": ("dbn", dict(hidden=[512, 512], pretrain_data="unlabeled", pretrain=PRE, ensemble=5, finetune={**FT, "dropout": 0.5, "weight_decay": 1e-4, "swa_start": 30})),
  # a later probe, after seeing that averaging the study's three seeds of the paper-size nets raised their
  # cross-corpus UAR (../seed-ensembles.md): three paper-size members, on different held-out speakers
  "mlpP_e3": ("mlp", dict(hidden=[1000, 1000, 2000], ensemble=3, finetune={**FT, "precision": "bf16-mixed"})),
  "dbnP_e3_own": ("dbn", dict(hidden=[1000, 1000, 2000], pretrain_data="unlabeled", pretrain=PAPER_PRE, ensemble=3,
                              member_stacks="own", finetune={**FT, "precision": "bf16-mixed"})),
  # and with dbn_best's lighter pretraining (100 epochs, batches of 64), one stack shared by the members
  "dbnP_e3_pre": ("dbn", dict(hidden=[1000, 1000, 2000], pretrain_data="unlabeled", pretrain={**PRE, "precision": "bf16-mixed"},
                              ensemble=3, finetune={**FT, "precision": "bf16-mixed"})),
  "dbnP_e5_pre": ("dbn", dict(hidden=[1000, 1000, 2000], pretrain_data="unlabeled", pretrain={**PRE, "precision": "bf16-mixed"},
                              ensemble=5, finetune={**FT, "precision": "bf16-mixed"})),
  # a later probe: mixup (finetune.mixup_alpha), each batch trained on mixtures of two rows and their labels
  "dbn512_e5_do_mix02": ("dbn", dict(hidden=[512, 512], pretrain_data="unlabeled", pretrain=PRE, ensemble=5, finetune={**FT, "dropout": 0.5, "weight_decay": 1e-4, "mixup_alpha": 0.2})),
  "dbn512_e5_do_mix1": ("dbn", dict(hidden=[512, 512], pretrain_data="unlabeled", pretrain=PRE, ensemble=5, finetune={**FT, "dropout": 0.5, "weight_decay": 1e-4, "mixup_alpha": 1.0})),
}

if __name__ == "__main__":
    # Fit through the module imported by name: the workers cannot find __main__'s cached corpora().
    from run_selection import cands, score

    which = sys.argv[1].split(",") if len(sys.argv) > 1 else list(cands)
    norms = [Normalization(n) for n in (sys.argv[2].split(",") if len(sys.argv) > 2 else ["corpus"])]
    features_dir = sys.argv[3] if len(sys.argv) > 3 else "features"
    seeds = [int(s) for s in sys.argv[4].split(",")] if len(sys.argv) > 4 else [0, 1]
    df = pd.concat([score(n, *cands[n], norm, seeds, features_dir) for n in which for norm in norms], ignore_index=True)
    df.to_csv(f"{__file__.rsplit('/', 1)[0]}/{'_'.join(which)}_{'_'.join(map(str,norms))}.csv", index=False)
    print(df.groupby(["name", "norm"]).agg(uar=("uar", "mean"), sec=("sec", "mean")).round(3).to_string())
    print(df.pivot_table(index=["name","norm"], columns="task", values="uar").round(3).to_string())
