"""Errors that know what they mean to the user: each carries its exit code and a hint on what to do.

The command line turns any ``OdinError`` into one red line (the message, then the hint) and its exit code;
anything else is a bug in Odin and is shown as one (with the traceback under ``--debug``).

Exit codes: 1 the run failed (state saved, fix the cause and ``--resume``), 2 bad usage or input (nothing
started or nothing changed), 3 over budget (money or ``--max-job-duration``; nothing started).
"""

from __future__ import annotations


class OdinError(Exception):
    """A failure the user can act on. ``hint`` says what to do next."""

    exit_code = 1
    hint: str | None = None  # a subclass may set its usual hint here

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        message = super().__str__()
        return f"{message}\n{self.hint}" if self.hint else message


class InputError(OdinError):
    """The user's input, options or files are wrong: exit 2, nothing was started."""

    exit_code = 2


class StageFailed(OdinError):
    """A stage could not do its job (for example every item it was given failed): the run fails with exit 1."""

    exit_code = 1
