"""The command classes every ``trackguard`` command uses: one place that turns errors into
``Error: ...`` lines and exit status 2 (docs/cli.md).

Each command handles its own errors, so it behaves the same run as ``trackguard x`` or
invoked on its own (as tests do). ``--debug`` on ``trackguard`` or ``TRACKGUARD_DEBUG=1``
lets the exception through with its traceback.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
from collections.abc import Callable
from typing import Any, Final, NoReturn, cast

import click

from trackguard.errors import TrackguardError

#: Set to 1 (or use --debug) to see the traceback behind an error.
DEBUG_ENV: Final = "TRACKGUARD_DEBUG"
#: The exit status of every usage or input error.
USAGE_EXIT: Final = 2


def fail(message: str) -> None:
    """Print each line of ``message`` as ``Error: line`` on stderr."""
    for line in message.splitlines() or [""]:
        click.echo(f"Error: {line}", err=True)


def handle(ctx: click.Context, invoke: Callable[[], Any]) -> Any:
    """``invoke()``, with every error it raises as ``Error: ...`` lines on stderr, exit 2."""
    try:
        return invoke()
    except (click.UsageError, click.exceptions.Exit, click.Abort):
        raise  # click prints these (usage errors exit 2)
    except click.ClickException as exc:
        if _debug(ctx):
            raise
        fail(exc.format_message())
    except TrackguardError as exc:
        if _debug(ctx):
            raise
        fail(str(exc))
    except OSError as exc:
        if isinstance(exc, BrokenPipeError) and _stdout_gone():
            _reader_gone()
        if _debug(ctx):
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        fail(f"{where}{exc.strerror or exc}")
    except Exception as exc:
        if _debug(ctx):
            raise
        fail(
            f"internal error ({type(exc).__name__}: {exc}); run with --debug for the "
            "traceback and please report it"
        )
    sys.exit(USAGE_EXIT)


def _stdout_gone() -> bool:
    """Whether stdout is a pipe whose reader has gone (``trackguard ... | head``)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), 0)  # a pipe without readers reports POLLERR
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # closed, replaced or not a real file
        return False


def _reader_gone() -> NoReturn:
    """End quietly with status 1, as rich does, when the reader of stdout has gone: the
    output is cut short, which is no error to print. Status 1, not 0, so ``set -o pipefail``
    still sees the cut; stdout is pointed at /dev/null so the exit's flush cannot fail."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    sys.exit(1)


def _debug(ctx: click.Context) -> bool:
    """True when the error should propagate with its traceback."""
    root = ctx.find_root()
    return bool(root.params.get("debug")) or os.environ.get(DEBUG_ENV, "") not in ("", "0")


class TrackguardCommand(click.Command):
    """A command whose errors (in its option callbacks too) are ``Error: ...`` and exit 2."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        _refuse_extra_arguments(self, ctx, args)
        return cast(
            list[str], handle(ctx, lambda: super(TrackguardCommand, self).parse_args(ctx, args))
        )

    def invoke(self, ctx: click.Context) -> Any:
        return handle(ctx, lambda: super(TrackguardCommand, self).invoke(ctx))


def _refuse_extra_arguments(command: click.Command, ctx: click.Context, args: list[str]) -> None:
    """Say ``Got unexpected extra argument`` before any option callback runs: click checks it
    after them, so ``store info PATH`` (for ``--db PATH``) would otherwise be told that the
    default store does not exist, naming a path the user never typed."""
    if ctx.allow_extra_args or ctx.resilient_parsing:
        return
    _, extra, _ = command.make_parser(ctx).parse_args(args=list(args))
    if extra:
        s = "" if len(extra) == 1 else "s"
        ctx.fail(f"Got unexpected extra argument{s} ({' '.join(map(str, extra))})")


class TrackguardGroup(click.Group):
    """A group whose errors (its options', its subcommands' parsing) are handled the same
    way; its subcommands are :class:`TrackguardCommand` and :class:`TrackguardGroup`."""

    command_class = TrackguardCommand

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return cast(
            list[str], handle(ctx, lambda: super(TrackguardGroup, self).parse_args(ctx, args))
        )

    def invoke(self, ctx: click.Context) -> Any:
        return handle(ctx, lambda: super(TrackguardGroup, self).invoke(ctx))


TrackguardGroup.group_class = TrackguardGroup
