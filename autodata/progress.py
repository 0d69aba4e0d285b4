"""Progress bars per stage and live accepted/rejected counts (rich), or silence."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from autodata.terminal import printable


class Reporter:
    """What the flow tells the user while it runs. ``quiet=True`` prints nothing."""

    def __init__(self, console: Console | None = None, quiet: bool = False) -> None:
        self.console = console or Console(stderr=True)
        self.quiet = quiet

    @contextmanager
    def stage(self, label: str, total: int) -> Iterator[Callable[[], None]]:
        """A progress bar for ``total`` units of work; yields the 'one done' callback."""
        if self.quiet or total == 0:
            yield lambda: None
            return
        columns = (
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=self.console, transient=False) as bar:
            task = bar.add_task(label, total=total)
            yield lambda: bar.advance(task)

    def line(self, text: str) -> None:
        """One status line (e.g. live counts after each round). ``text`` is rich markup written
        by us: any part that came from a file, a server or a model is escaped by the caller
        (``rich.markup.escape``); control characters are escaped here."""
        if not self.quiet:
            self.console.print(printable(text))

    def warn(self, text: str) -> None:
        """One line the user must see even with ``quiet`` (e.g. a source file skipped), printed
        as it is, its control characters escaped (it may quote a file name or a server)."""
        self.console.print(printable(text), highlight=False, soft_wrap=True, markup=False)
