"""DVC stage `features@<corpus>`: eGeMAPSv02 functionals of one corpus (features/<corpus>.parquet)."""

from __future__ import annotations

from pathlib import Path

from crossemo.stages import stage_main

DESCRIPTION = "DVC stage: eGeMAPSv02 functionals (features/NAME.parquet)"


def add_arguments(parser) -> None:
    parser.add_argument("corpus", help="a key of params.yaml's corpora")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--table", help="default: tables/NAME.parquet")
    parser.add_argument("--out")


def run(args) -> None:
    import pandas as pd

    from crossemo.config import corpus_config, feature_settings, load_params
    from crossemo.data.features import extract_table

    params = load_params(args.params)
    cfg, settings = corpus_config(params, args.corpus), feature_settings(params)
    table = pd.read_parquet(args.table or f"tables/{cfg.name}.parquet")
    features, rejected = extract_table(table, cfg.audio_root, settings, progress=cfg.name)
    out = Path(args.out or f"features/{cfg.name}.parquet")
    out.parent.mkdir(parents=True, exist_ok=True)
    features.to_parquet(out, index=False)
    rejected.to_csv(out.with_suffix(".rejected.csv"), index=False)
    note = f", {len(rejected)} rejected (listed in {out.with_suffix('.rejected.csv')})" if len(rejected) else ""
    print(f"{cfg.name}: {len(features)} x {features.shape[1]} -> {out}{note}")


main = stage_main("features", DESCRIPTION, add_arguments, run)

if __name__ == "__main__":
    main()
