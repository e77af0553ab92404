"""DVC stage `experiment@<scenario>`: every model and seed of one scenario (results/<scenario>.parquet)."""

from __future__ import annotations

from pathlib import Path

from crossemo.stages import stage_main

DESCRIPTION = "DVC stage: run one scenario for every model and seed (results/NAME.parquet)"


def add_arguments(parser) -> None:
    from crossemo.experiments.settings import Scenario

    parser.add_argument("scenario", choices=[s.value for s in Scenario])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--features", default="features", help="folder of features/<corpus>.parquet")
    parser.add_argument("--out")


def run(args) -> None:
    from crossemo.config import load_params
    from crossemo.experiments.runner import Runner, load_features
    from crossemo.experiments.settings import experiment_settings

    params = load_params(args.params)
    settings = experiment_settings(params, args.scenario)
    table = load_features(list(params["corpora"]), args.features)
    results = Runner(args.scenario, table, params.get("models") or {}, settings).run()
    out = Path(args.out or f"results/{args.scenario}.parquet")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    # Without the MLflow run ids, which differ on every run: the same code, data and params give the
    # same bytes, so a fresh clone's `dvc repro` leaves dvc.lock as committed (runs are found by their tags).
    results.drop(columns="run_id").to_parquet(tmp, index=False)
    tmp.replace(out)  # a killed stage leaves the whole file or none
    if results.empty:
        print(f"{args.scenario}: no configuration fits these corpora; empty table -> {out}")
        return
    summary = results.groupby(["model"])[["accuracy", "uar"]].mean().round(3)
    print(f"{args.scenario}: {len(results)} runs -> {out}\n{summary.to_string()}")


main = stage_main("experiment", DESCRIPTION, add_arguments, run)

if __name__ == "__main__":
    main()
