"""Figures, metrics.json and the markdown report, with the paper's own numbers beside ours."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure  # pyplot-free figures: no global backend or state to set

from crossemo.experiments.metrics import mean_ci, summarize

#: Latif et al. (2018), within-corpus accuracy (%): DBN and sparse AE + SVM.
PAPER_WITHIN = {
    "aibo": (74.11, 71.73),
    "iemocap": (54.77, 50.29),
    "emodb": (72.38, 70.24),
    "savee": (56.76, 50.95),
    "emovo": (76.22, 64.76),
}
KEYS = ["scenario", "protocol", "model", "source", "target", "fraction"]


def confusion_figure(matrix: np.ndarray, title: str):
    figure = Figure(figsize=(3.2, 3))
    axis = figure.subplots()
    # Fixed margins, not tight_layout: every run draws one, and layout was half of its cost.
    figure.subplots_adjust(left=0.25, bottom=0.2, right=0.95, top=0.9)
    axis.imshow(matrix, cmap="Blues", vmin=0)
    for (i, j), value in np.ndenumerate(matrix):
        dark = value > 0.6 * matrix.max()
        axis.text(j, i, str(value), ha="center", va="center", color="white" if dark else "black")
    axis.set_xticks([0, 1], ["negative", "positive"])
    axis.set_yticks([0, 1], ["negative", "positive"], rotation=90, va="center")
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title, fontsize=9)
    return figure


def load_results(directory: str | Path = "results") -> pd.DataFrame:
    frames = [pd.read_parquet(f) for f in sorted(Path(directory).glob("*.parquet"))]
    frames = [f for f in frames if len(f)]
    if not frames:
        raise FileNotFoundError(f"no results under {directory}/: run the experiment stages first (dvc repro)")
    return pd.concat(frames, ignore_index=True)


def _rounded(value: float) -> float | None:
    """A proportion for JSON, rounded; an absent one (NaN, e.g. the interval of a single seed) is null."""
    return None if pd.isna(value) else round(float(value), 4)


def headline_metrics(summary: pd.DataFrame, baseline: str = "svm") -> dict:
    """What `dvc metrics show` and `dvc exp show` compare: per scenario and model, the mean UAR and
    accuracy over the scenario's cells, and the best other model's UAR margin over the baseline.
    A few dozen numbers; every cell's detail is in metrics_detail.json and the report."""
    out: dict = {}
    for scenario, frame in summary.groupby("scenario", sort=False):
        means = frame.groupby("model")[["uar", "accuracy"]].mean()
        entry: dict = {
            model: {"uar": _rounded(row["uar"]), "accuracy": _rounded(row["accuracy"])}
            for model, row in means.iterrows()
        }
        if baseline in means.index and len(means) > 1:
            best_other = means["uar"].drop(baseline).max()
            entry[f"best_vs_{baseline}_uar"] = _rounded(best_other - means.loc[baseline, "uar"])
        out[scenario] = entry
    return out


def detail_metrics(summary: pd.DataFrame) -> dict:
    """scenario -> protocol -> model -> 'source->target[@fraction]' -> named means and 95% CIs (null
    where a single seed gives no interval)."""
    out: dict = {}
    for row in summary.to_dict("records"):
        pair = f"{row['source']}->{row['target']}" + (f"@{row['fraction']:.2f}" if row["fraction"] else "")
        entry = {"seeds": int(row["seeds"]), "majority_rate": _rounded(row["majority_rate"])}
        for metric in ("accuracy", "uar", "macro_f1"):
            entry[f"{metric}_mean"] = _rounded(row[metric])
            entry[f"{metric}_ci95_low"] = _rounded(row[f"{metric}_ci_low"])
            entry[f"{metric}_ci95_high"] = _rounded(row[f"{metric}_ci_high"])
        out.setdefault(row["scenario"], {}).setdefault(row["protocol"], {}).setdefault(row["model"], {})[pair] = entry
    return out


def _bars(axis, frame: pd.DataFrame, category: str, metric: str, models: list[str], extra=None):
    """Grouped bars with 95% CI whiskers; `extra` adds hatched reference bars (the paper's)."""
    categories = list(dict.fromkeys(frame[category]))
    series = [(m, frame[frame["model"] == m].set_index(category)) for m in models]
    extra = extra or []
    width = 0.8 / (len(series) + len(extra))
    x = np.arange(len(categories))
    for i, (model, data) in enumerate(series):
        values = [100 * data[metric].get(c, np.nan) for c in categories]
        low = [100 * (data[metric].get(c, np.nan) - data[f"{metric}_ci_low"].get(c, np.nan)) for c in categories]
        axis.bar(x + i * width, values, width, yerr=low, capsize=2, label=model)
    for j, (label, values) in enumerate(extra):
        axis.bar(
            x + (len(series) + j) * width,
            [values.get(c, np.nan) for c in categories],
            width,
            label=label,
            hatch="//",
            fill=False,
        )
    axis.set_xticks(x + width * (len(series) + len(extra) - 1) / 2, categories, rotation=30, ha="right", fontsize=8)
    axis.set_ylabel(f"{metric} (%)")
    axis.set_ylim(0, 100)
    axis.axhline(50, color="grey", lw=0.5, ls=":")


def figure_within(summary: pd.DataFrame, out: Path) -> Path:
    frame = summary[(summary["scenario"] == "within") & (summary["protocol"] == "random")]
    models = sorted(frame["model"].unique())
    figure = Figure(figsize=(8, 4))
    axis = figure.subplots()
    extra = [
        ("paper DBN", {c: v[0] for c, v in PAPER_WITHIN.items()}),
        ("paper sparse AE+SVM", {c: v[1] for c, v in PAPER_WITHIN.items()}),
    ]
    _bars(axis, frame, "target", "accuracy", models, extra)
    majority = frame.groupby("target")["majority_rate"].first()
    categories = list(dict.fromkeys(frame["target"]))
    axis.scatter(
        np.arange(len(categories)) + 0.4,
        [100 * majority[c] for c in categories],
        marker="_",
        s=400,
        color="red",
        label="majority class",
        zorder=5,
    )
    axis.set_title("Fig. 1: within corpus, paper's protocol (random 75/25): accuracy")
    axis.legend(fontsize=7, ncol=3)
    return _save(figure, out / "fig1_within.png")


def figure_pairs(summary: pd.DataFrame, scenario: str, title: str, path: Path) -> Path | None:
    frame = summary[summary["scenario"] == scenario].copy()
    if frame.empty:
        return None
    frame["pair"] = frame["source"] + "→" + frame["target"]
    figure = Figure(figsize=(max(8, 0.5 * frame["pair"].nunique()), 4))
    axis = figure.subplots()
    _bars(axis, frame, "pair", "uar", sorted(frame["model"].unique()))
    axis.set_title(title)
    axis.legend(fontsize=7, ncol=4)
    return _save(figure, path)


def figure_target_fraction(summary: pd.DataFrame, out: Path) -> Path | None:
    frame = summary[summary["scenario"] == "target_fraction"]
    if frame.empty:
        return None
    targets = list(dict.fromkeys(frame["target"]))
    figure = Figure(figsize=(3.2 * len(targets), 3.2))
    axes = figure.subplots(1, len(targets), sharey=True, squeeze=False)
    within = summary[(summary["scenario"] == "within") & (summary["protocol"] == "speaker")]
    for axis, target in zip(axes[0], targets):
        for model, data in frame[frame["target"] == target].groupby("model"):
            data = data.sort_values("fraction")
            line = axis.plot(100 * data["fraction"], 100 * data["uar"], marker="o", label=model)[0]
            axis.fill_between(
                100 * data["fraction"],
                100 * data["uar_ci_low"],
                100 * data["uar_ci_high"],
                alpha=0.15,
                color=line.get_color(),
            )
            base = within[(within["target"] == target) & (within["model"] == model)]["uar"]
            if len(base):
                axis.axhline(100 * base.iloc[0], color=line.get_color(), ls="--", lw=0.8)
        axis.set_title(f"target {target}", fontsize=9)
        axis.set_xlabel("% of target in training")
    axes[0][0].set_ylabel("UAR (%); dashed: within corpus")
    axes[0][-1].legend(fontsize=7)
    figure.suptitle("Fig. 3: all other corpora plus a share of the target")
    return _save(figure, out / "fig3_target_fraction.png")


def figure_heatmap(summary: pd.DataFrame, out: Path, model: str) -> Path | None:
    cross = summary[(summary["scenario"] == "single_source") & (summary["model"] == model)]
    within = summary[
        (summary["scenario"] == "within") & (summary["protocol"] == "speaker") & (summary["model"] == model)
    ]
    if cross.empty:
        return None
    cells = pd.concat([cross, within.assign(source=within["target"])])
    matrix = cells.pivot_table(index="source", columns="target", values="uar")
    figure = Figure(figsize=(1.2 * len(matrix.columns) + 2, 1.0 * len(matrix) + 1.5))
    axis = figure.subplots()
    image = axis.imshow(100 * matrix.to_numpy(), cmap="viridis", vmin=40, vmax=100)
    for (i, j), value in np.ndenumerate(100 * matrix.to_numpy()):
        axis.text(j, i, f"{value:.0f}", ha="center", va="center", color="white")
    axis.set_xticks(range(len(matrix.columns)), matrix.columns)
    axis.set_yticks(range(len(matrix.index)), matrix.index)
    axis.set_xlabel("test corpus")
    axis.set_ylabel("training corpus")
    axis.set_title(f"{model}: UAR (%), diagonal speaker-independent within corpus", fontsize=9)
    figure.colorbar(image)
    return _save(figure, out / "cross_corpus_heatmap.png")


def _save(figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def _pct(row, metric: str) -> str:
    if pd.isna(row[metric + "_ci_low"]):  # one seed: no interval
        return f"{100 * row[metric]:.1f} [n/a]"
    return f"{100 * row[metric]:.1f} [{100 * row[metric + '_ci_low']:.1f}, {100 * row[metric + '_ci_high']:.1f}]"


def _cell(row: dict, column: str) -> str:
    return f"{100 * row[column]:.0f}%" if column == "fraction" else str(row[column])


def table(frame: pd.DataFrame, columns: list[str]) -> str:
    lines = [
        "| " + " | ".join(columns + ["accuracy % [95% CI]", "majority %", "UAR % [95% CI]", "seeds"]) + " |",
        "|" + "---|" * (len(columns) + 4),
    ]
    for row in frame.to_dict("records"):
        cells = [_cell(row, c) for c in columns]
        cells += [_pct(row, "accuracy"), f"{100 * row['majority_rate']:.1f}", _pct(row, "uar"), str(row["seeds"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paper_comparison(summary: pd.DataFrame, dbn: str, sae: str) -> str:
    frame = summary[(summary["scenario"] == "within") & (summary["protocol"] == "random")].set_index(
        ["target", "model"]
    )
    lines = [
        "| corpus | paper DBN acc. | our DBN acc. | paper SAE+SVM acc. | our SAE+SVM acc. | majority % | our DBN UAR |",
        "|---|---|---|---|---|---|---|",
    ]
    for corpus in dict.fromkeys(summary["target"]):
        paper = PAPER_WITHIN.get(corpus, (None, None))
        ours = lambda m, k, c=corpus: f"{100 * frame.loc[(c, m), k]:.2f}" if (c, m) in frame.index else "-"
        majority = f"{100 * frame.loc[(corpus, dbn), 'majority_rate']:.1f}" if (corpus, dbn) in frame.index else "-"
        lines.append(
            f"| {corpus} | {paper[0] or '-'} | {ours(dbn, 'accuracy')} | {paper[1] or '-'} | "
            f"{ours(sae, 'accuracy')} | {majority} | {ours(dbn, 'uar')} |"
        )
    return "\n".join(lines)


def paper_and_best_dbn(models: list[str]) -> tuple[str, str]:
    """(the paper's DBN, the project's best DBN-based model) among the run's models: `dbn_paper` and
    `dbn_best` when present, else the first dbn* model for both."""
    first = next((m for m in models if m.startswith("dbn")), models[0])
    return ("dbn_paper" if "dbn_paper" in models else first), ("dbn_best" if "dbn_best" in models else first)


def scenario_means(summary: pd.DataFrame) -> str:
    """Mean UAR (%) per scenario (and protocol) and model: every model on one line per scenario."""
    means = summary.groupby(["scenario", "protocol", "model"], sort=False)["uar"].mean().unstack("model")
    models = list(means.columns)
    lines = ["| scenario | protocol | " + " | ".join(models) + " |", "|---|---|" + "---|" * len(models)]
    for (scenario, protocol), row in means.iterrows():
        best = row.max()
        cells = [(f"**{100 * v:.1f}**" if v == best else f"{100 * v:.1f}") if pd.notna(v) else "-" for v in row]
        lines.append(f"| {scenario} | {protocol} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def against_baseline(summary: pd.DataFrame, model: str, baselines: tuple[str, ...] = ("svm", "svm_cv")) -> list[str]:
    """The model against each SVM baseline cell by cell, every loss named; and its intervals."""
    notes = []
    for baseline in (b for b in baselines if b in set(summary["model"])):
        cells = (
            summary[summary["model"].isin([model, baseline])]
            .pivot_table(index=["scenario", "protocol", "source", "target", "fraction"], columns="model", values="uar")
            .dropna()
        )
        if cells.empty:
            continue
        gap = cells[model] - cells[baseline]
        losses = gap[gap < 0].sort_values()
        notes.append(
            f"{model} against {baseline}: UAR higher in {int((gap > 0).sum())} of {len(gap)} cells, mean "
            f"difference {100 * gap.mean():+.1f} points."
        )
        if len(losses):
            named = "; ".join(
                f"{k[0]}/{k[1]} {k[2]}->{k[3]}" + (f" @{k[4]:.0%}" if k[4] else "") + f" by {-100 * v:.1f}"
                for k, v in losses.items()
            )
            notes.append(f"{model} loses to {baseline} in: {named}.")
    own = summary[(summary["model"] == model) & summary["scenario"].isin(["within", "leave_one_out"])]
    half = 100 * (own["uar_ci_high"] - own["uar_ci_low"]) / 2
    if half.notna().any():
        wide = own[half > 5]
        notes.append(
            f"{model}'s 95% interval half-width on within-corpus and leave-one-out cells: at most "
            f"{half.max():.1f} points; above 5 in {len(wide)} of {int(half.notna().sum())}"
            + (": " + ", ".join(f"{r.protocol} {r.target}" for r in wide.itertuples()) if len(wide) else "")
            + "."
        )
    return notes


def write_report(results: pd.DataFrame, out: str | Path = "reports", dbn: str | None = None, header: str = "") -> dict:
    """Write metrics.json (the headline numbers DVC compares), metrics_detail.json (every cell),
    the figures, the plot data and report.md; return the headline numbers."""
    out = Path(out)
    summary = summarize(results, KEYS)
    models = sorted(summary["model"].unique())
    paper_dbn, best = paper_and_best_dbn(models)
    dbn = dbn or paper_dbn
    sae = next((m for m in models if m.startswith("sae")), dbn)
    metrics = headline_metrics(summary)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    (out / "metrics_detail.json").write_text(json.dumps(detail_metrics(summary), indent=1))
    figures = out / "figures"
    made = [
        figure_within(summary, figures),
        figure_pairs(summary, "single_source", "Fig. 2: single source: UAR", figures / "fig2_single_source.png"),
        figure_target_fraction(summary, figures),
        figure_pairs(
            summary, "multi_source", "Fig. 4a: several languages together: UAR", figures / "fig4a_multi_source.png"
        ),
        figure_pairs(
            summary, "leave_one_out", "Fig. 4b: leave one corpus out: UAR", figures / "fig4b_leave_one_out.png"
        ),
        figure_heatmap(summary, figures, dbn),
    ]
    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    summary[summary["scenario"] == "target_fraction"][["target", "model", "fraction", "uar", "accuracy"]].to_csv(
        plots / "target_fraction.csv", index=False
    )
    summary[summary["scenario"] == "within"][["protocol", "target", "model", "accuracy", "uar"]].to_csv(
        plots / "within.csv", index=False
    )
    (out / "report.md").write_text(markdown(summary, results, made, dbn, sae, header, out, best))
    return metrics


def findings(summary: pd.DataFrame, dbn: str, baseline: str = "svm") -> list[str]:
    """The questions the paper asks, answered from these runs."""
    notes = []
    if baseline in summary["model"].values:
        wins = losses = 0
        worst = []
        for key, group in summary.groupby(["scenario", "protocol", "source", "target", "fraction"]):
            scores = group.set_index("model")["uar"]
            if dbn in scores and baseline in scores:
                if scores[dbn] > scores[baseline]:
                    wins += 1
                else:
                    losses += 1
                    worst.append((scores[baseline] - scores[dbn], f"{key[0]}/{key[1]} {key[2]}->{key[3]}"))
        notes.append(f"{dbn} beats eGeMAPS + {baseline} in UAR in {wins} of {wins + losses} configurations.")
        if worst:
            worst.sort(reverse=True)
            notes.append(
                "Largest losses: " + "; ".join(f"{name} by {100 * gap:.1f} points" for gap, name in worst[:5]) + "."
            )
    single = (
        summary[(summary["scenario"] == "single_source") & (summary["model"] == dbn)].groupby("target")["uar"].mean()
    )
    multi = summary[(summary["scenario"] == "multi_source") & (summary["model"] == dbn)].groupby("target")["uar"].mean()
    loco = summary[(summary["scenario"] == "leave_one_out") & (summary["model"] == dbn)].set_index("target")["uar"]
    for target in loco.index:
        if target in single and target in multi:
            notes.append(
                f"{target}: mean UAR with one source {100 * single[target]:.1f}, two languages "
                f"{100 * multi[target]:.1f}, all others {100 * loco[target]:.1f}."
            )
    fraction = summary[(summary["scenario"] == "target_fraction") & (summary["model"] == dbn)]
    for target, data in fraction.groupby("target"):
        data = data.sort_values("fraction")
        if target in loco:
            notes.append(
                f"{target}: UAR with no target data {100 * loco[target]:.1f}, with "
                f"{100 * data['fraction'].iloc[0]:.0f}% {100 * data['uar'].iloc[0]:.1f}, with "
                f"{100 * data['fraction'].iloc[-1]:.0f}% {100 * data['uar'].iloc[-1]:.1f}."
            )
    return notes


def provenance(results: pd.DataFrame) -> str:
    """What the report was made from. Only what the stage's inputs fix: a commit or an experiment name
    here would change the report with every commit, and a fresh clone's `dvc repro` could never
    reproduce the committed dvc.lock. The commit is the one dvc.lock is committed in; each MLflow run
    carries it (tag git_commit), with the DVC experiment's name (dvc_experiment)."""
    from crossemo.experiments.tracking import provenance_tags

    tags = provenance_tags(sorted(set(results["target"])))
    return (
        f"Produced by the pipeline's stages `experiment@*` and `report` from data.dvc md5 "
        f"`{tags['data_dvc_md5']}`, corpora {tags['corpora']}; {len(results)} runs, models "
        f"{', '.join(sorted(set(results['model'])))}, seeds {', '.join(str(s) for s in sorted(set(results['seed'])))}. "
        "The commit is the one that holds this dvc.lock; MLflow runs carry it as the tag git_commit."
    )


def markdown(summary, results, figures, dbn, sae, header, out: Path, best: str | None = None) -> str:
    best = best or dbn
    parts = [
        "# crossemo: reproduction report",
        header,
        provenance(results),
        "Accuracy is the paper's metric; read it against the majority-class rate of each test set. "
        "UAR (unweighted average recall) is the field's standard. Brackets: 95% confidence intervals "
        "over seeds (Student's t; folds are averaged within a seed; n/a with a single seed). The SVMs "
        "label by their class-balanced decision function, as the field reports them.",
        "## Mean UAR per scenario (%, best in bold)",
        scenario_means(summary),
        f"## The project's best DBN-based model ({best}) against the standard SVM",
        "\n".join(f"- {n}" for n in against_baseline(summary, best)),
        f"## Reproduction of the paper ({dbn}): within corpus (Table/Fig. 1, paper's protocol: random 75/25)",
        paper_comparison(summary, dbn, sae),
        f"## Findings ({dbn}, the paper's questions)",
        "\n".join(f"- {n}" for n in findings(summary, dbn)),
        "## Figures",
        "\n".join(f"![{p.stem}]({p.relative_to(out).as_posix()})" for p in figures if p),
    ]
    titles = {
        "within": "Within corpus (random: the paper's protocol; speaker: speaker-grouped folds)",
        "single_source": "Single source",
        "target_fraction": "Target fraction (all other corpora as source)",
        "multi_source": "Multi-source (several languages)",
        "leave_one_out": "Leave one corpus out",
        "transfer": "Transfer to test-only corpora (audio_unseen: their audio not used at all, each utterance "
        "standardised with the training rows' statistics; audio_statistics: the same fits, their label-free "
        "statistics standardise them, as `crossemo evaluate` does a new corpus; audio_used: their label-free "
        "statistics standardise them and their rows join the unlabeled pool)",
    }
    for scenario, title in titles.items():
        frame = summary[summary["scenario"] == scenario]
        if frame.empty:
            continue
        columns = {
            "within": ["protocol", "target", "model"],
            "transfer": ["protocol", "source", "target", "model"],
        }.get(scenario, ["source", "target", "model"])
        if scenario == "target_fraction":
            columns.append("fraction")
        parts += [f"## {title}", table(frame.sort_values(columns), columns)]
        notes = results[(results["scenario"] == scenario) & (~results["speaker_disjoint"].astype(bool))]
        if scenario != "within" and len(notes):
            parts.append("Not speaker-disjoint: " + "; ".join(sorted(set(notes["notes"]))))
    return "\n\n".join(p for p in parts if p) + "\n"


def compare(before: pd.DataFrame, after: pd.DataFrame, metric: str = "uar") -> pd.DataFrame:
    """Two sets of results on the configurations and seeds they share: the metric's mean over those
    seeds in each, and the change with its 95% interval. For a before/after of one change (a schedule,
    a feature set, the arithmetic) on the same splits: seed s of both runs shares its splits and its
    start, so the interval comes from the per-seed differences (paired) and says whether the change
    stands out from what another seed would do. An interval across 0 does not; one seed gives none."""
    per_seed = [r.groupby(KEYS + ["seed"], dropna=False)[metric].mean() for r in (before, after)]
    paired = pd.concat(per_seed, axis=1, keys=["before", "after"], join="inner").reset_index()
    rows = []
    for key, group in paired.groupby(KEYS, dropna=False):
        change, _, low, high = mean_ci(group["after"] - group["before"])
        row = dict(zip(KEYS, key))
        row.update(before=group["before"].mean(), after=group["after"].mean(), change=change, seeds=len(group))
        rows.append({**row, "change_ci_low": low, "change_ci_high": high})
    compared = pd.DataFrame(
        rows, columns=[*KEYS, "before", "after", "change", "seeds", "change_ci_low", "change_ci_high"]
    )
    return compared.sort_values(KEYS, na_position="first").reset_index(drop=True)


def paired_models(
    before: pd.DataFrame, after: pd.DataFrame, pairs: list[tuple[str, str]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`before` and `after` cut to each (after_model, before_model) pair, both named "AFTER vs BEFORE",
    so `compare` pairs two configurations cell for cell and seed for seed (e.g. a method with none)."""
    befores, afters = [], []
    for after_model, before_model in pairs:
        label = f"{after_model} vs {before_model}"
        befores.append(before[before["model"] == before_model].assign(model=label))
        afters.append(after[after["model"] == after_model].assign(model=label))
    return pd.concat(befores, ignore_index=True), pd.concat(afters, ignore_index=True)


def comparison_by(compared: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """`compare`'s cells summed up per group (e.g. model and scenario): how many cells, the mean
    metric before and after and the mean change (in points), and how many cells' 95% intervals hold
    0 (no larger a change than another seed would make), lie wholly above or wholly below it."""
    low, high = compared["change_ci_low"], compared["change_ci_high"]
    flagged = compared.assign(holds_zero=(low <= 0) & (high >= 0), above=low > 0, below=high < 0)
    table = flagged.groupby(by, sort=False).agg(
        cells=("change", "size"),
        before=("before", "mean"),
        after=("after", "mean"),
        change=("change", "mean"),
        interval_holds_0=("holds_zero", "sum"),
        above_0=("above", "sum"),
        below_0=("below", "sum"),
    )
    table[["before", "after", "change"]] *= 100
    return table


def scenario_changes(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Per scenario and model in both, the change of the scenario's mean UAR (points) with its 95%
    interval over the seeds: each seed's mean over the cells of its own change (seed s of both runs
    shares its splits and, for a pretrained DBN, its stack's seed). Cells of one seed share a stack,
    so this, not a count of cells, is the test of whether a scenario moved."""
    per_seed = [r.groupby([*KEYS, "seed"], dropna=False)["uar"].mean() for r in (before, after)]
    paired = pd.concat(per_seed, axis=1, keys=["before", "after"], join="inner").reset_index()
    changes = paired.assign(change=paired["after"] - paired["before"])
    rows = []
    for (scenario, model), cells in changes.groupby(["scenario", "model"]):
        mean, _, low, high = mean_ci(cells.groupby("seed")["change"].mean().to_numpy())
        rows.append({"scenario": scenario, "model": model, "change": mean, "ci_low": low, "ci_high": high})
    table = pd.DataFrame(rows, columns=["scenario", "model", "change", "ci_low", "ci_high"])
    table[["change", "ci_low", "ci_high"]] *= 100
    return table


def identical_runs(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Per model (rows) and scenario (columns): how many of the runs both hold gave the very same UAR
    ("k of n"), e.g. to show that a change left the models it should not touch as they were."""
    both = before.merge(after, on=[*KEYS, "seed", "fold"], suffixes=("_before", "_after"))
    same = both.assign(same=(both["uar_before"] - both["uar_after"]).abs() < 1e-12)
    counts = same.groupby(["model", "scenario"])["same"].agg(["sum", "size"])
    table = (counts["sum"].astype(str) + " of " + counts["size"].astype(str)).unstack("scenario")
    return table.rename_axis(index=None, columns=None)


def comparison_markdown(compared: pd.DataFrame, before: str, after: str, metric: str = "uar") -> str:
    columns = ["scenario", "protocol", "model", "source", "target"]
    if (compared["fraction"].fillna(0) > 0).any():  # target-fraction rows differ by their share of the target alone
        columns.append("fraction")
    lines = [
        "| "
        + " | ".join(columns + [f"{metric} % {before}", f"{metric} % {after}", "change", "95% CI (paired seeds)"])
        + " |",
        "|" + "---|" * (len(columns) + 4),
    ]
    for row in compared.to_dict("records"):
        interval = (
            "n/a"
            if pd.isna(row["change_ci_low"])
            else f"[{100 * row['change_ci_low']:+.1f}, {100 * row['change_ci_high']:+.1f}]"
        )
        lines.append(
            "| "
            + " | ".join(
                [_cell(row, c) for c in columns]
                + [f"{100 * row['before']:.1f}", f"{100 * row['after']:.1f}", f"{100 * row['change']:+.1f}", interval]
            )
            + " |"
        )
    return "\n".join(lines)
