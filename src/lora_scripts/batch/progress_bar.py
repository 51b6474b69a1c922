"""The job's rich progress bar: images done/total, items, images/min, ETA (Ctrl-C finishing the current
batch is lora_scripts/stopping.py's GracefulStop)."""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def bar(show: bool, counts: dict, shard):
    """A function tick(done, images_per_min, eta_s) that moves the bar (a no-op without a bar). Items are
    counted as images // images_per_item (of this process's share)."""
    if not show:
        yield lambda *a: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..console import console

    columns = [
        TextColumn(f"rank {shard.rank}" if shard.world > 1 else "batch"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("images  {task.fields[items]} items  {task.fields[rate]} img/min  ETA {task.fields[eta]}"),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=console) as progress:
        per = counts["per_item"]
        items = f"{counts['done'] // per}/{counts['total'] // per}"
        task = progress.add_task(
            "", total=counts["total"], completed=counts["done"], rate="-", eta="-", items=items
        )

        def tick(done: int, rate: float, eta: float | None) -> None:
            shown = "-" if eta is None else f"{int(eta // 60)}:{int(eta % 60):02d}"
            items = f"{done // per}/{counts['total'] // per}"
            progress.update(task, completed=done, rate=f"{rate:.1f}", eta=shown, items=items)

        yield tick
