"""DVC stage entry points: one small module per stage, run as `python -m crossemo.stages.<name>`.

Each imports only what its stage needs, so dvc.yaml lists exactly the code a stage depends on
(a test derives those imports and checks them against dvc.yaml). The `crossemo` command offers
the same stages as subcommands with the same arguments.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable


def _terminated(signum, frame):
    # SIGTERM (a CI time-out, `kill`, a cluster's scheduler) unwinds like Ctrl-C, so open MLflow runs
    # are marked KILLED and temporary files are left behind instead of half-written outputs.
    raise KeyboardInterrupt(f"terminated by signal {signum}")


def run_guarded(command: Callable[[argparse.Namespace], None], args: argparse.Namespace, verbose: bool = False) -> None:
    """Run a command as a user's process: SIGTERM unwinds; a mistake the user can fix (UserError, a
    missing file) is one line and exit 1 (with its traceback too under --verbose); anything else is
    a bug and keeps its traceback; an interruption exits 130."""
    from crossemo.errors import UserError

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)
    try:
        command(args)
    except (UserError, FileNotFoundError) as error:
        if verbose:
            raise
        sys.exit(f"error: {error}")
    except KeyboardInterrupt as stop:
        print(f"interrupted ({stop or 'Ctrl-C'})", file=sys.stderr)
        sys.exit(130)


def stage_main(name: str, description: str, add_arguments, run) -> Callable[[list[str] | None], None]:
    """`main` for `python -m crossemo.stages.<name>`."""

    def main(argv: list[str] | None = None) -> None:
        parser = argparse.ArgumentParser(prog=f"python -m crossemo.stages.{name}", description=description)
        add_arguments(parser)
        args = parser.parse_args(argv)
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
        run_guarded(run, args)

    return main
