"""DVC stage `table@<corpus>`: one corpus' common table (tables/<corpus>.parquet)."""

from __future__ import annotations

from pathlib import Path

from crossemo.stages import stage_main

DESCRIPTION = "DVC stage: one corpus' common table (tables/NAME.parquet)"


def add_arguments(parser) -> None:
    parser.add_argument("corpus", help="a key of params.yaml's corpora")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out")


def run(args) -> None:
    from crossemo.config import corpus_config, load_params

    cfg = corpus_config(load_params(args.params), args.corpus)
    table = cfg.load()
    out = Path(args.out or f"tables/{cfg.name}.parquet")
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(out, index=False)
    counts = table["valence"].value_counts().to_dict()
    print(f"{cfg.name}: {len(table)} utterances, {table['speaker'].nunique()} speakers, {counts} -> {out}")


main = stage_main("table", DESCRIPTION, add_arguments, run)

if __name__ == "__main__":
    main()
