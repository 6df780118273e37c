"""The one kind of error a user sees: a line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

#: exit codes of every command (documented in `bkf --help`)
OK, NODE_DOWN, USAGE = 0, 1, 2


class UserError(Exception):
    """Something the user can fix (a missing file, stack, tool or input); exits USAGE by default."""

    def __init__(self, message: str, exit_code: int = USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code
