"""`lora-scripts batch JOB.yaml`: plan every (item, n), skip what index.csv already holds, make the rest in
batches on this process's share, record each image once it is complete, merge the index at the end."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from ..data.textfile import EncodingNotes
from ..errors import ConfigError, DataError
from ..generate.images import parameters_text
from ..generate.library import LoraLibrary
from ..stopping import GracefulStop
from .config import JobConfig, load_job
from .engine import Engine
from .fingerprint import check_or_start, facts
from .items import (
    Work,
    check_columns,
    check_overrides,
    lora_name,
    lora_tags,
    mix_of,
    plan_item,
    read_items,
    template_mixes,
)
from .ledger import Ledger, ObjectLedger, open_ledger
from .progress_bar import bar
from .shard import Shard, current_shard
from .sheet import THUMB, thumb_of, write_sheet
from .store import LocalOutput, ObjectOutput, open_output
from .unchanged import check_unchanged, remember_negatives

log = logging.getLogger(__name__)
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class Plan:
    works: list[Work]
    failed: list[tuple[str, int, str]]  # (id, n, reason) found before any image
    batches: list[list[Work]]
    library: LoraLibrary
    lora_files: dict[str, Path]
    unused_overrides: list[str]  # `overrides` keys no row has (yet): said once, by rank 0
    encodings: EncodingNotes  # an items file read as GB18030: said once, by rank 0


class JobLibrary(LoraLibrary):
    """lora_dir's files by name, plus the files `loras:` names by path (their tag name is the stem)."""

    def __init__(self, folder: Path | None, paths: list[str]):
        super().__init__(folder)
        self.paths = {lora_name(p): Path(p) for p in paths if p.endswith(".safetensors")}

    def find(self, name: str) -> Path:
        if name in self.paths:
            if not self.paths[name].is_file():
                raise ConfigError(f"The LoRA file '{self.paths[name]}' does not exist", "Check `loras:`")
            return self.paths[name]
        return super().find(name)


def plan_job(job: JobConfig) -> Plan:
    """Everything checked before the model loads: items, columns, LoRA names, output folder."""
    encodings = EncodingNotes()
    items, columns = read_items(job.items, job.id_column, encodings)
    check_columns(job, columns)
    unused = check_overrides(job, items)
    works, failed = [], []
    for item in items:
        try:
            works += plan_item(item, job)
        except DataError as err:
            failed += [(item.id, n, err.what) for n in range(job.images_per_item)]
    files = {w.file for w in works}
    if len(files) != len(works):
        raise DataError("Two ids give the same file name once unsafe characters are replaced", "Rename one")
    paths = [k for o in [job, *job.overrides.values()] for k in o.loras]
    library = JobLibrary(job.lora_dir, paths)
    names = sorted(
        {r.name for w in works for r in w.spec.loras} | {n for m in template_mixes(job) for n, _ in m}
    )
    lora_files = {name: library.find(name) for name in names}
    open_output(job.output_dir, job.storage_options).check_writable()
    return Plan(works, failed, batches_of(works, job.batch_size), library, lora_files, unused, encodings)


def batches_of(works: list[Work], size: int) -> list[list[Work]]:
    """Works grouped by LoRA mix (in order of first use), cut into batches: the same items always make the
    same batches, whatever was done before or how many processes share them (bit-identical images)."""
    groups: dict[tuple, list[Work]] = {}
    for w in works:
        groups.setdefault(mix_of(w.spec), []).append(w)
    return [g[i : i + size] for g in groups.values() for i in range(0, len(g), size)]


@dataclass
class Started:
    """A job checked and opened on output_dir: what every way of running it (ranks, Ray) starts from."""

    job: JobConfig
    plan: Plan
    out: LocalOutput | ObjectOutput
    ledger: Ledger | ObjectLedger
    order: dict
    done: dict
    facts: dict
    precision: str


def start_job(job_path: Path, new: bool, shard: Shard) -> Started:
    job = load_job(job_path)
    plan = plan_job(job)
    if shard.rank == 0:  # once per job, not once per process
        tell_plan(job, plan)
    precision = job.precision if job.precision != "auto" else "fp16" if shard.device != "cpu" else "fp32"
    out = open_output(job.output_dir, job.storage_options)
    now = facts(job, plan.lora_files, precision)
    with shard.first():
        check_or_start(out, now, new and shard.rank == 0)
    ledger = open_ledger(out, shard.rank)
    order = {(w.id, w.n): i for i, w in enumerate(plan.works)}
    if shard.world == 1:
        ledger.merge(order)  # what a crashed run left in its parts, into index.csv
        out.remove_stale_temps()
    done = ledger.done()
    with shard.first():  # rank 0 keeps the negative prompts before any rank makes an image
        check_unchanged(plan.works, plan.failed, done, out)
        if shard.rank == 0:
            remember_negatives(out, plan.works)
    if shard.rank == 0:
        for item_id, n, reason in plan.failed:
            ledger.fail(item_id, n, reason)
        ledger.commit()
    return Started(job, plan, out, ledger, order, done, now, precision)


def tell_plan(job: JobConfig, plan: Plan) -> None:
    """What the checks let pass but the user should know, in one line each."""
    plan.encodings.log()
    for key in plan.unused_overrides:
        log.warning(
            "overrides key '%s' matches no value of column '%s' in %s, so no image uses it (yet)",
            key,
            job.by,
            job.items.name,
        )


def make_engine(s: Started, device: str) -> Engine:
    engine = Engine(s.job, s.plan.library, template_mixes(s.job), device, DTYPES[s.precision])
    engine.lora_hashes = s.facts["lora_files"]  # WebUI's `Lora hashes` in each PNG
    return engine


def finish_job(s: Started, title: str) -> tuple[int, int]:
    """Merge every part into index.csv / failed.csv and write the contact sheet (one process, at the end)."""
    s.out.remove_stale_temps()
    counts = s.ledger.merge(s.order)
    rows = sorted(s.ledger.done().values(), key=lambda r: s.order.get((r["id"], int(r["n"])), len(s.order)))
    write_sheet(s.out, rows, {w.id: w.category for w in s.plan.works}, title)
    return counts


def run_job(job_path: Path, new: bool = False, show_bar: bool = True) -> dict:
    shard = current_shard(load_job(job_path).device)
    s = start_job(job_path, new, shard)
    mine = [b for i, b in enumerate(s.plan.batches) if i % shard.world == shard.rank]
    todo = [b for b in mine if any((w.id, w.n) not in s.done for w in b)]
    total = sum(len(b) for b in mine)
    counts = {"total": total, "done": total - _count(todo, s.done), "per_item": s.job.images_per_item}
    stopped = False
    if todo:
        engine = make_engine(s, shard.device)
        try:
            stopped = _make(engine, todo, s.done, s.ledger, s.out, shard, counts, show_bar)
        finally:
            engine.close()
    shard.wait()
    if shard.rank == 0:  # also after Ctrl-C: index.csv and index.html show what is finished
        counts["index"], counts["failed"] = finish_job(s, f"{job_path.stem}: {s.out.name}")
    if stopped:
        raise KeyboardInterrupt  # the CLI says "Stopped by the user" and exits 130
    return counts


def _count(batches: list[list[Work]], done: dict) -> int:
    return sum(1 for b in batches for w in b if (w.id, w.n) not in done)


def _make(engine, todo, done, ledger, out, shard: Shard, counts: dict, show_bar: bool) -> bool:
    """Make the batches of `todo`; True when a stop was asked for (after the batch being made)."""
    events = out.progress()
    events.event("start", rank=shard.rank, world=shard.world, pid=os.getpid(), **counts)
    started, made = time.time(), 0
    with GracefulStop(_say_stopping) as stop, bar(show_bar, counts, shard) as tick:
        for batch in todo:
            made_now = make_batch(engine, batch, done, ledger, out)
            files = [f for w, f in zip(batch, made_now, strict=True) if (w.id, w.n) not in done]
            made += len(files)
            tell_batch(events, tick, counts, shard.rank, files, made / max(time.time() - started, 1e-9) * 60)
            if stop.requested:
                events.event("end", rank=shard.rank, state="stopped", done=counts["done"])
                return True
    events.event("end", rank=shard.rank, state="done", done=counts["done"])
    return False


def make_batch(engine, batch: list[Work], done: dict, ledger, out) -> list[str | None]:
    """Render ``batch`` and save each image that ``done`` (index rows by (id, n)) does not hold: each work's
    file in index.csv (an earlier one's as recorded; None: it failed), once the batch's rows are committed."""
    started = time.time()
    images = engine.render(batch)
    seconds = (time.time() - started) / len(batch)
    files = [
        done[w.id, w.n]["file"] if (w.id, w.n) in done else save_image(w, im, engine, ledger, out, seconds)
        for w, im in zip(batch, images, strict=True)
    ]
    ledger.commit()  # an object store: the batch's rows, one object, after its images
    return files


def tell_batch(events, tick, counts: dict, rank: int, files: list[str | None], rate: float) -> None:
    """A finished batch of len(files) images (None: failed), made at `rate` images/min: the bar, an event."""
    counts["done"] += len(files)
    eta = (counts["total"] - counts["done"]) / rate * 60 if rate else None
    tick(counts["done"], rate, eta)
    events.event(
        "batch",
        rank=rank,
        done=counts["done"],
        total=counts["total"],
        images_per_min=round(rate, 2),
        eta_s=None if eta is None else round(eta, 1),
        files=[f for f in files if f],
    )


def save_image(work: Work, image: np.ndarray, engine, ledger, out, seconds: float) -> str | None:
    if not np.isfinite(image).all() or float(image.max()) < 1 / 255:
        ledger.fail(work.id, work.n, "the image came out black or NaN")
        return None
    picture = Image.fromarray((image * 255).round().astype("uint8"))
    hashes = {r.name: engine.lora_hashes[r.name] for r in work.spec.loras if r.weight != 0}
    data = png_bytes(picture, parameters_text(work.spec, engine.model_name, hashes, engine.vae_name))
    out.write_bytes(work.file, data)  # whole or absent: temp file + rename, or one PUT
    out.write_bytes(thumb_of(work.file), thumbnail(picture))  # for the contact sheet of thousands
    sha = hashlib.sha256(data).hexdigest()
    row = {
        "id": work.id,
        "n": work.n,
        "seed": work.spec.seed,
        "prompt": work.spec.text,
        "loras": lora_tags(work.spec),
        "file": work.file,
        "sha256": sha,
        "seconds": f"{seconds:.3f}",
    }
    ledger.record(row)  # only now: the image is complete where it goes
    return work.file


def thumbnail(picture: Image.Image, side: int = THUMB) -> bytes:
    """A small JPEG of the image for index.html: a sheet of full 1024 px PNGs would load gigabytes."""
    small = picture.copy()
    small.thumbnail((side, side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def png_bytes(picture: Image.Image, parameters: str) -> bytes:
    """The PNG as save/png.py writes it (WebUI's `parameters` text chunk), in memory: hashed as written."""
    info = PngInfo()
    info.add_text("parameters", parameters)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def _say_stopping() -> None:
    from ..console import console

    console.print("[yellow]Stopping after this batch (Ctrl-C again to stop now)...[/]")
