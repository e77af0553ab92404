"""DVC stage `report`: figures, metrics.json, metrics_detail.json and report.md from results/."""

from __future__ import annotations

from pathlib import Path

from crossemo.stages import stage_main

DESCRIPTION = "DVC stage: figures, metrics.json and report.md from results/"


def add_arguments(parser) -> None:
    parser.add_argument("--results", default="results")
    parser.add_argument("--out", default="reports")
    parser.add_argument("--header", help="a markdown file to put at the top (e.g. the command and commit)")


def run(args) -> None:
    from crossemo.experiments.report import load_results, write_report

    header = Path(args.header).read_text() if args.header else ""
    write_report(load_results(args.results), args.out, header=header)
    print(f"report -> {Path(args.out) / 'report.md'}")


main = stage_main("report", DESCRIPTION, add_arguments, run)

if __name__ == "__main__":
    main()
