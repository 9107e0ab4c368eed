"""Progress bars on stderr, shown only where a person is watching (a terminal).

Off a terminal (pipes, CI logs, ``--json`` runs captured by scripts) nothing is
drawn at all, so stderr keeps just the one-line messages and errors.
"""

from __future__ import annotations

import sys
from typing import Any


class Bars:
    """One rich progress display with a task per label: ``update(label, completed, total)``, then ``close()``."""

    def __init__(self, enabled: bool | None = None):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}

    def update(self, label: str, completed: float, total: float = 1.0) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            columns = [TextColumn("{task.description}"), BarColumn()]
            if total > 1:
                columns.append(MofNCompleteColumn())
            self._bar = Progress(*columns, TimeElapsedColumn(), transient=True, console=Console(file=sys.stderr))
            self._bar.start()
        if label not in self._tasks:
            self._tasks[label] = self._bar.add_task(label, total=total)
        self._bar.update(self._tasks[label], completed=completed)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> Bars:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
