"""The `crossemo` command. Each DVC stage's cmd is one of its subcommands."""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from crossemo import __version__
from crossemo.errors import ConfigError
from crossemo.stages import experiment, features, report, run_guarded, table


def _cmd_corpora_list(args) -> None:
    from crossemo.data.corpora import LOADERS

    for name, loader in LOADERS.items():
        print(f"{name:10s} {loader.language or '(from CSV)':10s} {loader.description}")


def _cmd_corpora_show(args) -> None:
    """A loader on a folder, or (no ROOT) a corpus of params.yaml as the pipeline reads it."""
    from crossemo.config import corpus_config, load_params
    from crossemo.data.corpora import load_corpus

    if args.root is None:
        table = corpus_config(load_params(args.params), args.name).load()
    else:
        table = load_corpus(args.name, args.root)
    print(f"{len(table)} utterances, {table['speaker'].nunique()} speakers")
    print(table.groupby(["emotion", "valence"]).size().rename("utterances").to_string())


def _cmd_corpora_import(args) -> None:
    """Copy real corpora into data/ (git-ignored, tracked by data.dvc): DVC cannot track links."""
    source, target = Path(args.source), Path(args.target)
    if not source.is_dir():
        sys.exit(f"error: {source} not found: give the folder holding emodb/, savee/, emovo/, urdu/")
    for corpus in sorted(p for p in source.iterdir() if p.is_dir()):
        if (target / corpus.name).exists():
            print(f"{target / corpus.name} exists, kept")
            continue
        shutil.copytree(corpus, target / corpus.name)
        print(f"copied {corpus} -> {target / corpus.name}")


def _cmd_params_use(args) -> None:
    """Replace whole top-level sections of params.yaml with another file's, keeping every comment."""
    from ruamel.yaml import YAML

    yaml = YAML()
    params, chosen = yaml.load(Path(args.params)), yaml.load(Path(args.file))
    for section in chosen:
        params[section] = chosen[section]
    yaml.dump(params, Path(args.params))
    print(f"{args.params}: took {', '.join(chosen)} from {args.file}")


def _cmd_demo(args) -> None:
    from crossemo.data.demo import generate

    counts = generate(args.directory, seed=args.seed)
    for name, n in counts.items():
        print(f"{name:8s} {n:4d} synthetic utterances -> {Path(args.directory) / name}")


def _cmd_compare(args) -> None:
    from crossemo.experiments.report import compare, comparison_markdown, paired_models

    before, after = pd.read_parquet(args.before), pd.read_parquet(args.after)
    if args.pair:
        before, after = paired_models(before, after, [_pair(p) for p in args.pair])
    compared = compare(before, after, args.metric)
    if compared.empty:
        raise SystemExit(f"{args.before} and {args.after} share no configuration (scenario, model, source, target)")
    text = comparison_markdown(compared, args.before_label, args.after_label, args.metric)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)


def _pair(text: str) -> tuple[str, str]:
    after, sep, before = text.partition("=")
    if not (sep and after and before):
        raise ConfigError(f"--pair {text!r}: give AFTER_MODEL=BEFORE_MODEL, e.g. --pair svm_coral=svm")
    return after, before


def _label_free_features(params: dict, corpora: list[str], directory: str = "features"):
    """Feature table of these corpora and each corpus standardised on its own statistics."""
    from crossemo.data.features import labelled_rows
    from crossemo.experiments.normalization import Normalization, normalize
    from crossemo.experiments.protocols import Split
    from crossemo.experiments.runner import load_features

    table, x = labelled_rows(load_features(corpora, directory))
    everything = Split(np.arange(len(table)), np.array([], dtype=int), "", "")
    return table, normalize(x, table, everything, Normalization.CORPUS)


def _cmd_tune(args) -> None:
    import multiprocessing

    from crossemo.config import load_params, trainable_corpora
    from crossemo.experiments.settings import tuning_settings
    from crossemo.experiments.tuning import prepare, tune

    params = load_params(args.params)
    settings = tuning_settings(params, n_trials=args.n_trials, study_name=args.study_name, storage=args.storage)
    trainable_corpora(params, settings.corpora, "tuning.corpora")  # refuses a test-only corpus
    table, x = _label_free_features(params, list(settings.corpora))
    prepare(settings, args.resume)  # fails early if the study exists and --resume was not given
    if args.workers > 1:
        ctx = multiprocessing.get_context("spawn")
        workers = [
            ctx.Process(target=tune, args=(table, x, settings, True), kwargs={"worker": i}) for i in range(args.workers)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        failed = [w.exitcode for w in workers if w.exitcode]
        if failed:
            sys.exit(f"error: {len(failed)} tuning worker(s) failed")
    else:
        tune(table, x, settings, resume=True)
    import optuna

    study = optuna.load_study(study_name=settings.study_name, storage=settings.storage)
    states = pd.Series([t.state.name for t in study.trials]).value_counts().to_dict()
    print(f"study {settings.study_name}: {states}; best validation UAR {study.best_value:.3f} -> {settings.output}")
    print(f"open it: optuna-dashboard {settings.storage}")


def _cmd_register(args) -> None:
    from crossemo.config import corpus_config, feature_settings, load_params, trainable_corpora
    from crossemo.data.demo import is_synthetic
    from crossemo.experiments.runner import load_features
    from crossemo.models.catalog import model_from_config
    from crossemo.serving.fitting import train_pipeline
    from crossemo.serving.registry import MODEL_NAME, register
    from crossemo.serving.settings import registry_settings

    params = load_params(args.params)
    settings = registry_settings(params, model=args.model, corpora=args.corpora)
    corpora = list(trainable_corpora(params, settings.corpora, "registry.corpora"))
    configs = dict(params.get("models") or {})
    target = None
    if args.adapt:
        configs[settings.model] = _adapted_configuration(configs, settings.model, args.adapt_method)
        target = _target_rows(params, args.adapt, feature_settings(params))
    elif args.adapt_method:
        raise ConfigError("--adapt-method names how to adapt; give the corpora to adapt to with --adapt CORPUS")
    table = load_features(corpora, args.features)
    model = model_from_config(configs, settings.model, seed=settings.seed)
    trained = train_pipeline(
        table,
        model,
        feature_settings(params),
        settings.validation_fraction,
        settings.seed,
        settings.normalization,
        settings.lone_rows,
        settings.refit,
        target,
    )
    synthetic = any(is_synthetic(corpus_config(params, c).root) for c in corpora)
    run_params = {
        "model": settings.model,
        "corpora": ",".join(corpora),
        "seed": settings.seed,
        "normalization": str(settings.normalization),
        "lone_rows": str(settings.lone_rows),
        "refit": settings.refit,
        "config": configs.get(settings.model, {}),
        "validation_fraction": settings.validation_fraction,
    }
    done = register(trained, run_params, corpora=corpora, synthetic=synthetic, crown=args.crown)
    print(
        f"registered {MODEL_NAME} v{done.version}: held-out UAR {trained.heldout_uar:.3f} with the speaker column, "
        f"{trained.heldout_uar_lone:.3f} one utterance at a time ({len(trained.heldout)} utterances); "
        f"trained on {trained.rows} utterances"
    )
    print(("crowned champion: " if done.crowned else "the champion stays: ") + done.comparison.reason)
    if target is not None:
        print(f"adapted: {target.describe(configs[settings.model]['adaptation'])}")
    if synthetic:
        print("note: trained on the SYNTHETIC demo corpora; `crossemo serve`, `predict` and `evaluate` will say so")


def _adapted_configuration(configs: dict, name: str, method: str | None) -> dict:
    from crossemo.serving.adapting import adapted_configuration

    if name not in configs:
        raise ConfigError(f"model configuration {name!r} is not in params.yaml's models: {', '.join(configs)}")
    return adapted_configuration(configs[name], name, method)


def _target_rows(params: dict, names: list[str], features):
    """The corpora to adapt to, extracted as evaluate extracts a corpus, label-free."""
    from crossemo.config import corpus_config
    from crossemo.serving.adapting import TargetRows
    from crossemo.serving.corpus_evaluation import corpus_features

    return TargetRows.from_tables({name: corpus_features(corpus_config(params, name), features) for name in names})


def _cmd_serve(args) -> None:
    import json
    import os

    from crossemo.experiments.tracking import configure
    from crossemo.serving.http_guard import MODEL_URI_ENV, PAGE_ENV, SERVING_MODEL_CONFIG
    from crossemo.serving.requests import AUDIO_ROOT_ENV
    from crossemo.serving.versions import model_summary, resolve_version

    uri = configure(args.tracking_uri)
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    if args.audio_root:
        if not Path(args.audio_root).is_dir():
            raise FileNotFoundError(f"--audio-root {args.audio_root} is not a folder")
        env[AUDIO_ROOT_ENV] = str(Path(args.audio_root).resolve())
    model_uri = f"models:/crossemo-valence@{args.alias}"
    env[MODEL_URI_ENV] = model_uri
    version = resolve_version(model_uri)
    if version is not None:  # answers report the version the registry assigned
        env[SERVING_MODEL_CONFIG] = json.dumps({"model_version": str(version.version)})
    print(f"serving {model_uri}:\n{model_summary(model_uri)}", file=sys.stderr)
    print(
        f"audio_path: {'files under ' + env[AUDIO_ROOT_ENV] if env.get(AUDIO_ROOT_ENV) else 'disabled'}",
        file=sys.stderr,
    )
    env[PAGE_ENV] = "0" if args.no_page else "1"
    page = "off (--no-page)" if args.no_page else f"http://{args.host}:{args.port}/ (upload or record a clip)"
    print(f"page: {page}", file=sys.stderr)
    # MLflow's scoring app (as `mlflow models serve` runs it) behind crossemo's request guard
    command = [
        "uvicorn",
        "--factory",
        "crossemo.serving.http_guard:create_app",
        "--host",
        args.host,
        "--port",
        str(args.port),
        "--no-access-log",
    ]
    print(" ".join(command), file=sys.stderr)
    os.execvpe(command[0], command, env)


def _cmd_predict(args) -> None:
    """Score files, folders and patterns; a bad file gets its reason, the others their answers."""
    from dataclasses import replace

    from crossemo.config import feature_settings, load_params
    from crossemo.experiments.tracking import configure
    from crossemo.serving.batch_prediction import (
        AnswerWriter,
        expand_inputs,
        output_format,
        score_files,
        speaker_rule,
        summary_line,
    )
    from crossemo.serving.versions import load_registered, model_summary

    files = expand_inputs(args.files)
    if args.output:
        output_format(args.output)  # a wrong extension fails before any work
    speaker_of = speaker_rule(args.speaker_from) if args.speaker_from else None
    configure(args.tracking_uri)
    model = load_registered(args.model_uri)
    print(f"model: {args.model_uri}\n{model_summary(args.model_uri)}", file=sys.stderr)
    trained_with = model.unwrap_python_model().pipeline.features  # the model's own sampling rate and channel
    local = feature_settings(load_params(args.params)) if Path(args.params).is_file() else trained_with
    settings = replace(trained_with, workers=local.workers, cache_dir=local.cache_dir)
    speakers = [speaker_of(f) for f in files] if speaker_of else None
    with AnswerWriter(args.output) as write:
        written, failed = score_files(model, files, settings, write, speakers, progress=len(files) >= 20)
    if args.output:
        print(f"{written} rows -> {args.output}", file=sys.stderr)
    print(summary_line(written, failed), file=sys.stderr)
    if failed:
        sys.exit(1)


def _cmd_evaluate(args) -> None:
    """A trained model on corpora named in params.yaml: accuracy, UAR, F1 and confusion per corpus."""
    from dataclasses import replace

    from crossemo.config import corpus_config, feature_settings, load_params
    from crossemo.experiments.normalization import Normalization
    from crossemo.experiments.tracking import configure
    from crossemo.serving.batch_prediction import output_format
    from crossemo.serving.corpus_evaluation import as_markdown, corpus_features, evaluate_corpora, resolve, write_scores
    from crossemo.serving.versions import model_summary

    if args.output:
        output_format(args.output)  # a wrong extension fails before any work
    params = load_params(args.params)
    configs = [corpus_config(params, name) for name in args.corpora]  # an unknown name fails before any work
    configure(args.tracking_uri)
    model = resolve(args.model, Normalization(args.normalization) if args.normalization else None, args.as_served)
    if args.model.startswith("models:/") or args.model == "champion":
        uri = args.model if args.model.startswith("models:/") else "models:/crossemo-valence@champion"
        print(model_summary(uri), file=sys.stderr)
    local = feature_settings(params)
    settings = (
        local if model.features is None else replace(model.features, workers=local.workers, cache_dir=local.cache_dir)
    )
    tables = {c.name: corpus_features(c, settings) for c in configs}
    if args.adapt_method and not args.adapt:
        raise ConfigError("--adapt-method names how to adapt; add --adapt")
    if args.adapt:
        from crossemo.serving.corpus_evaluation import evaluate_adapted

        scores = evaluate_adapted(model, tables, args.features, args.adapt_method)
        model = replace(model, name=f"{model.name}, refitted on its training corpora adapted to each corpus in turn")
    else:
        scores = evaluate_corpora(model, tables)
    print(f"model: {model.name}", file=sys.stderr)
    print(as_markdown(scores))
    if args.output:
        write_scores(scores, args.output)
        print(f"{len(scores)} rows -> {args.output}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crossemo",
        description="Cross-corpus speech emotion (valence) recognition: corpora, eGeMAPS features, DBNs.",
        epilog="The pipeline itself runs with `dvc repro`; these commands are its stages and tools.",
    )
    parser.add_argument("--version", action="version", version=f"crossemo {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    corpora = sub.add_parser("corpora", help="list, inspect and import corpora").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    corpora.add_parser("list", help="the corpus loaders and their languages").set_defaults(func=_cmd_corpora_list)
    show = corpora.add_parser("show", help="read a corpus and count its emotions and valence")
    show.add_argument("name", help="a loader (as in `crossemo corpora list`) with ROOT, or a corpus of params.yaml")
    show.add_argument("root", nargs="?", help="the corpus folder (or CSV manifest); none: NAME is in params.yaml")
    show.add_argument("--params", default="params.yaml")
    show.set_defaults(func=_cmd_corpora_show)
    imp = corpora.add_parser("import", help="copy real corpora under data/ for DVC to track")
    imp.add_argument("source", help="folder holding one folder per corpus, e.g. ../shared/corpora")
    imp.add_argument("target", nargs="?", default="data/real", help="where to copy them (default: data/real)")
    imp.set_defaults(func=_cmd_corpora_import)
    use = sub.add_parser("params", help="switch params.yaml sections, e.g. to the real corpora").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    take = use.add_parser("use", help="replace params.yaml's sections with those of another file")
    take.add_argument("file", help="a YAML file, e.g. params.real.yaml")
    take.add_argument("--params", default="params.yaml")
    take.set_defaults(func=_cmd_params_use)

    demo = sub.add_parser("demo", help="the embedded default: synthetic demo corpora").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    gen = demo.add_parser("generate", help="write the five synthetic corpora (deterministic)")
    gen.add_argument("directory", nargs="?", default="data/demo")
    gen.add_argument("--seed", type=int, default=2018)
    gen.set_defaults(func=_cmd_demo)

    for stage in (table, features, experiment, report):  # the DVC stages, as `python -m crossemo.stages.<name>`
        name = stage.__name__.rsplit(".", 1)[1]
        command = sub.add_parser(name, help=stage.DESCRIPTION)
        stage.add_arguments(command)
        command.set_defaults(func=stage.run)

    comp = sub.add_parser("compare", help="two results files on their shared configurations: before, after, change")
    comp.add_argument("before", help="a results parquet, e.g. results/within.parquet of an earlier run")
    comp.add_argument("after")
    comp.add_argument("--metric", default="uar", choices=["accuracy", "uar", "macro_f1"])
    comp.add_argument("--before-label", dest="before_label", default="before")
    comp.add_argument("--after-label", dest="after_label", default="after")
    comp.add_argument(
        "--pair",
        action="append",
        metavar="AFTER=BEFORE",
        help="compare configuration AFTER (in the after file) with BEFORE (in the before file) on their shared "
        "cells and seeds, e.g. svm_coral=svm with one file given twice; repeatable",
    )
    comp.add_argument("--out", help="also write the markdown table here")
    comp.set_defaults(func=_cmd_compare)
    tune = sub.add_parser("tune", help="Optuna search over the DBN (resumable; several workers share one study)")
    tune.add_argument("--params", default="params.yaml")
    tune.add_argument("--resume", action="store_true", help="continue an existing study; finished trials are kept")
    tune.add_argument("--workers", type=int, default=1, help="processes sharing the study")
    tune.add_argument("--n-trials", dest="n_trials", type=int, help="finished trials to reach in all")
    tune.add_argument("--study-name", dest="study_name")
    tune.add_argument("--storage", help="Optuna RDB URL: sqlite:///..., postgresql://..., mysql://...")
    tune.set_defaults(func=_cmd_tune)

    reg = sub.add_parser("register", help="train, log and register crossemo-valence; crown it if it is better")
    reg.add_argument("--params", default="params.yaml")
    reg.add_argument("--model", help="a configuration under params.yaml's models (default: registry.model)")
    reg.add_argument("--corpora", nargs="+", help="training corpora (default: registry.corpora, else all)")
    reg.add_argument("--features", default="features")
    decide = reg.add_mutually_exclusive_group()
    decide.add_argument(
        "--crown", dest="crown", action="store_true", default=None, help="make it the champion whatever the comparison"
    )
    decide.add_argument("--no-crown", dest="crown", action="store_false", help="leave the champion as it is")
    _adapt_arguments(reg, "CORPUS", "adapt the model to these corpora (params.yaml names; their labels are not read)")
    reg.set_defaults(func=_cmd_register)

    serve = sub.add_parser(
        "serve",
        help="serve models:/crossemo-valence@champion over HTTP (MLflow's scoring server behind a request guard)",
    )
    serve.add_argument("--alias", default="champion")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=5001)
    serve.add_argument(
        "--no-page", dest="no_page", action="store_true", help="API only: no try-it page at / (nor /card)"
    )
    serve.add_argument(
        "--audio-root",
        dest="audio_root",
        help="let requests name audio files (audio_path) inside this folder only; off by default "
        "(or set CROSSEMO_AUDIO_ROOT)",
    )
    serve.add_argument("--tracking-uri", help="default: MLFLOW_TRACKING_URI, else sqlite:///mlruns/mlflow.db")
    serve.set_defaults(func=_cmd_serve)

    pred = sub.add_parser(
        "predict",
        help="valence of audio files, offline, with the registered model",
        description="Every input gets a row; a bad file gets its reason in the error column and the exit status is 1.",
    )
    pred.add_argument("files", nargs="+", help="audio files, folders (searched recursively) or glob patterns")
    pred.add_argument("--output", "-o", help="write the rows to a .csv or .json file instead of printing them")
    pred.add_argument("--params", default="params.yaml", help="features.workers and cache_dir from here, if present")
    pred.add_argument("--model-uri", default="models:/crossemo-valence@champion")
    pred.add_argument(
        "--speaker-from",
        dest="speaker_from",
        metavar="RULE",
        help="group files by speaker, standardised together as in training: parent (the file's folder), "
        "regex:PATTERN (its first group, searched in the path) or manifest:CSV (columns path, speaker)",
    )
    pred.add_argument("--tracking-uri", help="default: MLFLOW_TRACKING_URI, else sqlite:///mlruns/mlflow.db")
    pred.set_defaults(func=_cmd_predict)

    ev = sub.add_parser(
        "evaluate",
        help="a trained model on your corpora: accuracy, UAR, F1 and confusion per corpus",
        description="MODEL: champion, models:/NAME@ALIAS or models:/NAME/VERSION, or an experiment run's id. "
        "CORPUS: names under params.yaml's corpora (any loader, CSV manifests included).",
    )
    ev.add_argument("model", metavar="MODEL")
    ev.add_argument("corpora", nargs="+", metavar="CORPUS")
    ev.add_argument(
        "--normalization",
        choices=["train", "corpus", "speaker"],  # crossemo.experiments.normalization.Normalization
        help="how the corpus' features are standardised (default: as the model was trained; corpus and speaker "
        "use the evaluated corpus' own label-free statistics)",
    )
    ev.add_argument(
        "--as-served",
        dest="as_served",
        action="store_true",
        help="score one utterance at a time, as the server answers a client that sends no speaker column",
    )
    _adapt_arguments(
        ev,
        None,
        "refit the version's configuration on its training corpora (--features) with each evaluated corpus "
        "in turn as the target it adapts to, label-free, then score that corpus",
    )
    ev.add_argument("--features", default="features", help="with --adapt: the training corpora's feature tables")
    ev.add_argument("--output", "-o", help="also write the rows to a .csv or .json file")
    ev.add_argument("--params", default="params.yaml")
    ev.add_argument("--tracking-uri", help="default: MLFLOW_TRACKING_URI, else sqlite:///mlruns/mlflow.db")
    ev.set_defaults(func=_cmd_evaluate)
    return parser


def _adapt_arguments(command, metavar: str | None, help: str) -> None:
    from crossemo.models.adaptation import Adaptation

    if metavar:
        command.add_argument("--adapt", nargs="+", metavar=metavar, help=help)
    else:
        command.add_argument("--adapt", action="store_true", help=help)
    methods = [str(m) for m in Adaptation if m is not Adaptation.NONE]
    command.add_argument(
        "--adapt-method",
        dest="adapt_method",
        choices=methods,
        help="with --adapt: the method (default: the configuration's own adaptation)",
    )


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    run_guarded(args.func, args, verbose=args.verbose)


if __name__ == "__main__":
    main()
