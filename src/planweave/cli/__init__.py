"""The ``planweave`` command line: run goals and plans with a live task tree, inspect jobs.

Every error a user can fix (a ``PlanweaveError`` or bad usage) is printed as one red line on
stderr with no traceback; ``--debug`` or ``PLANWEAVE_DEBUG=1`` adds the traceback. Exit codes:
0 success, 1 a job or command failed, 2 bad usage or configuration, 130 interrupted.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from planweave.cli import (
    _agents,
    _approvals,
    _commands,
    _mcp,
    _run,
    _serve,
    _session,
    _spell,
    _worker,
)
from planweave.control import _failpoint
from planweave.errors import PlanweaveError, UnknownBackend, UsageError

__all__ = ["app", "main"]

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_debug = False


class _Group(TyperGroup):
    """Runs a command and turns whatever escapes it into one line and an exit code."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        global _debug
        _debug = os.environ.get("PLANWEAVE_DEBUG", "") not in ("", "0", "false")
        handler = _install_log_handler()
        try:
            _failpoint.arm(os.environ.get("PLANWEAVE_FAILPOINT", ""))
            code = super().main(
                args,
                prog_name,
                complete_var,
                standalone_mode=False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
        except typer.TyperException as exc:  # bad usage: unknown option, bad value…
            if not exc.format_message().strip():  # help was printed (no arguments given)
                sys.exit(exc.exit_code)
            hint = " (see --help)" if exc.exit_code == EXIT_USAGE else ""
            _fail(exc.format_message() + hint, exc.exit_code, exc)
        except typer.Abort as exc:
            _fail("aborted", EXIT_INTERRUPTED, exc)
        except KeyboardInterrupt as exc:
            _fail("interrupted", EXIT_INTERRUPTED, exc)
        except UnknownBackend as exc:
            from planweave.cli._checks import unknown_backend_message

            _fail(unknown_backend_message(exc), EXIT_USAGE, exc)
        except PlanweaveError as exc:
            _fail(str(exc), EXIT_USAGE if isinstance(exc, UsageError) else EXIT_FAILED, exc)
        except Exception as exc:
            _fail(
                f"unexpected {type(exc).__name__}: {exc} (rerun with --debug for details)",
                EXIT_FAILED,
                exc,
            )
        finally:
            logging.getLogger("planweave").removeHandler(handler)
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int, exc: BaseException) -> NoReturn:
    err = Console(stderr=True, highlight=False)
    if _debug:
        err.print("".join(traceback.format_exception(exc)), markup=False, end="")
    logging.getLogger("planweave.cli").debug("command failed", exc_info=exc)
    err.print(Text("error: " + " ".join(message.split()), style="red"), soft_wrap=True)
    sys.exit(code)


def _install_log_handler() -> logging.Handler:
    """Log to this invocation's stderr (so logs never mix into ``--json`` on stdout)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("planweave")
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    return handler


app = typer.Typer(
    cls=_Group,
    name="planweave",
    help="Turn a goal into a plan of tasks and carry it out durably.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors")] = False,
) -> None:
    global _debug
    _debug = _debug or debug


app.command("run")(_run.run)
app.command("resume")(_run.resume)
app.command("cancel")(_commands.cancel)
app.command("jobs")(_commands.jobs)
app.command("show")(_commands.show)
app.command("events")(_commands.events)
app.command("approvals")(_approvals.approvals)
app.command("approve")(_approvals.approve)
app.command("reject")(_approvals.reject)
app.command("serve")(_serve.serve)
app.command("worker")(_worker.worker)
app.command("status")(_worker.status)
app.add_typer(_serve.token_app)
app.add_typer(_agents.agents_app)
app.add_typer(_mcp.mcp_app)
app.add_typer(_mcp.tools_app)
app.add_typer(_session.session_app)
app.add_typer(_spell.spell_app)


def main() -> None:
    """Entry point of the ``planweave`` script."""
    app()
