"""Probes of dbn_best's fine-tuning on the selection tasks (EMO-DB and SAVEE only; the tasks, seeds
and score of run_selection.py): which weights each member keeps (best validation UAR or loss), a
refit on every training row for the chosen number of epochs, and no early stopping at all (every
row, a fixed number of epochs). Run from a project whose features/ hold the real corpora:

    python reports/real-corpora/selection/probe_fine_tuning.py NAME[,NAME...] speaker FEATURES_DIR

It writes NAMEs.csv beside itself. The fixed-epoch variant is what `finetune.validation_fraction: 0`
now does in the package (dbn_best uses it); the others stayed probes.
"""
import sys
import time

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from joblib import Parallel, delayed
from run_selection import corpora

from crossemo.experiments.metrics import valence_scores
from crossemo.experiments.normalization import Normalization, normalize
from crossemo.models import training as D
from crossemo.models.catalog import make_model
from crossemo.models.networks import DBNValence
from crossemo.models.validation import validation_split

FEAT = sys.argv[3] if len(sys.argv) > 3 else "features"
table, raw, y, spk, TASKS = corpora(FEAT)  # run_selection's rows and six tasks

class Recording(D.ValenceClassifier):
    """Records the epoch of the best validation UAR and of the lowest validation loss."""
    keep = "uar"
    def _validate(self):
        x, yv = self.validation
        self.net.eval(); logits = self.net(x); self.net.train()
        uar = D.unweighted_average_recall(yv, logits.argmax(1), self.net.head.out_features)
        loss = F.cross_entropy(logits, yv, weight=self.class_weights)
        if not hasattr(self, "best_loss_"): self.best_loss_, self.loss_epoch_, self.uar_epoch_ = float("inf"), 0, 0
        score_better = (uar > self.best_uar_) if self.keep == "uar" else (float(loss) < self.best_loss_)
        if uar > self.best_uar_: self.best_uar_, self.uar_epoch_ = uar, self.current_epoch
        if float(loss) < self.best_loss_: self.best_loss_, self.loss_epoch_ = float(loss), self.current_epoch
        if score_better:
            self.best_state_ = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        return loss, uar

class Probe(DBNValence):
    def __init__(self, mode="uar", refit=False, **kw):
        super().__init__(**kw); self.mode, self.refit = mode, refit
    def _fit(self, x, y, groups, unlabeled):
        fine = self._finetune_settings(); t = lambda a: torch.from_numpy(np.ascontiguousarray(a))
        self.nets_ = []
        if isinstance(self.mode, int):  # no validation: every member on every row for a fixed number of epochs
            for member in range(self.ensemble):
                seed = self.seed + 1000 * member
                net = self._initial_net(x, x[:0], unlabeled, seed)
                self.nets_.append(refit(net, t(x), t(y), fine, self.mode, seed))
            return
        for member in range(self.ensemble):
            seed = self.seed + 1000 * member
            train, val = validation_split(y, groups, fine.validation_fraction, seed)
            net = self._initial_net(x[train], x[val], unlabeled, seed)
            D.L.seed_everything(seed, workers=False, verbose=False)
            counts = torch.bincount(t(y[train]), minlength=2).clamp(min=1).float()
            data = D.batches(t(x[train]), t(y[train]), batch_size=fine.batch_size, shuffle=True, seed=seed)
            Recording.keep = "uar" if self.mode == "uar" else "loss"
            module = Recording(net, fine, counts.sum() / (2 * counts), data, (t(x[val]), t(y[val])))
            stop = D.L.pytorch.callbacks.EarlyStopping("finetune/val_loss", mode="min", patience=fine.patience, check_on_train_epoch_end=True)
            with D.quiet_lightning(False):
                D.trainer(fine.max_epochs, None, False, callbacks=[stop], min_epochs=fine.min_epochs).fit(module, D.one_step_per_epoch())
            if not self.refit:
                net.load_state_dict(module.best_state_); self.nets_.append(net.eval()); continue
            epochs = 1 + (module.uar_epoch_ if self.mode == "uar" else module.loss_epoch_)
            self.nets_.append(refit(self._initial_net(x[train], x[val], unlabeled, seed), t(x), t(y), fine, epochs, seed))

def refit(net, x, y, fine, epochs, seed):
    """The member again from its start, on every training row, for its chosen number of epochs."""
    D.L.seed_everything(seed, workers=False, verbose=False)
    counts = torch.bincount(y, minlength=2).clamp(min=1).float(); w = counts.sum() / (2 * counts)
    opt = torch.optim.Adam(net.parameters(), lr=fine.learning_rate, weight_decay=fine.weight_decay, fused=True)
    data = D.batches(x, y, batch_size=fine.batch_size, shuffle=True, seed=seed)
    net.train()
    for _ in range(epochs):
        for xb, yb in data:
            loss = F.cross_entropy(net(xb), yb, weight=w); opt.zero_grad(); loss.backward(); opt.step()
    return net.eval()

FT = dict(learning_rate=0.001, max_epochs=200, min_epochs=30, patience=30, batch_size=32, validation_fraction=0.2)
PRE = dict(learning_rate=0.001, epochs=100, batch_size=64, momentum=0.9)
BEST = dict(hidden=[512, 512], pretrain_data="unlabeled", pretrain=PRE, ensemble=5, finetune={**FT, "dropout": 0.5, "weight_decay": 1e-4})
cands = {
    "svm": lambda s: make_model("svm", seed=s),
    "dbn512_e5_do": lambda s: make_model("dbn", seed=s, **BEST),
    "p_uar": lambda s: Probe("uar", False, seed=s, **BEST),
    "p_loss": lambda s: Probe("loss", False, seed=s, **BEST),
    "p_refit_uar": lambda s: Probe("uar", True, seed=s, **BEST),
    "p_refit_loss": lambda s: Probe("loss", True, seed=s, **BEST),
    "p_fixed30": lambda s: Probe(30, seed=s, **BEST),
    "p_fixed60": lambda s: Probe(60, seed=s, **BEST),
    "p_fixed120": lambda s: Probe(120, seed=s, **BEST),
    "p_fixed80": lambda s: Probe(80, seed=s, **BEST),
    "p_fixed60_e1": lambda s: Probe(60, seed=s, **{**BEST, "ensemble": 1}),
    "p_fixed60_e3": lambda s: Probe(60, seed=s, **{**BEST, "ensemble": 3}),
}

def run(name, norm, seed, task):
    torch.set_num_threads(1)
    x = normalize(raw, table, None, norm)
    label, tr, te = task
    m = cands[name](seed)
    pool = x if getattr(m, "needs_unlabeled_pool", False) else None
    t0 = time.time(); m.fit(x[tr], y[tr], groups=spk[tr], unlabeled=pool)
    return dict(name=name, norm=str(norm), seed=seed, task=label, uar=valence_scores(y[te], m.predict(x[te]))["uar"], sec=time.time() - t0)

which = sys.argv[1].split(",")
norm = Normalization(sys.argv[2] if len(sys.argv) > 2 else "speaker")
jobs = [(n, norm, s, t) for n in which for s in (0, 1) for t in TASKS]
df = pd.DataFrame(Parallel(n_jobs=2)(delayed(run)(*j) for j in jobs))
df.to_csv(f"{__file__.rsplit('/', 1)[0]}/{'_'.join(which)}.csv", index=False)
print(df.groupby("name").agg(uar=("uar", "mean"), sec=("sec", "mean")).round(3).to_string())
print(df.pivot_table(index="name", columns="task", values="uar").round(3).to_string())
