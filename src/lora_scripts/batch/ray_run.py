"""`lora-scripts batch JOB.yaml --ray ADDRESS`: the job's batches as tasks of Ray actors (one pipeline per
actor, one GPU each on a GPU cluster). Ray restarts a dead actor and retries its batch, at most RESTARTS times
per actor; an actor that dies once more stops the job with one sentence, after the batches running elsewhere
are finished. Every actor records into its own index part, so a retried batch cannot put an (id, n) into
index.csv twice, and the driver merges the parts as a single process does. The driver writes the progress
events and shows the bar of a one-process run; Ctrl-C (or SIGTERM) starts no new batch, waits for the ones
running on the actors, merges what is recorded and exits 130 (a second Ctrl-C stops at once).

Each actor opens the job itself (start_job), on whichever node Ray puts it: the job file at the driver's
absolute path, and the items, lora_dir, `loras:` files, a base_model file and a local output_dir at the paths
the job file gives (relative ones from the job file's folder) must be the same files on every node."""

from __future__ import annotations

import logging
import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import ConfigError, LoraScriptsError
from ..stopping import GracefulStop
from .config import load_job
from .ledger import open_ledger
from .progress_bar import bar
from .run import Started, finish_job, make_batch, make_engine, start_job, tell_batch
from .shard import Shard

log = logging.getLogger(__name__)
RESTARTS = 3  # per actor: a worker that dies on every batch (out of memory, say) stops the job, not loops


class BatchMaker:
    """A Ray actor: the job's pipeline, loaded once; make(i) renders batch i and records what is missing."""

    def __init__(self, job_path: str, name: str, device: str):
        import torch

        # Ctrl-C is the driver's to handle: it lets the batch running here finish. Ray (2.60) starts its
        # processes with SIGINT blocked and an actor in a process group of its own; this keeps it so anyway
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if device == "cpu":
            torch.set_num_threads(1)  # one CPU per actor
        self.s = start_job(Path(job_path), False, Shard(1, 2, device))  # not rank 0: no merge, no failed rows
        self.s.ledger = open_ledger(self.s.out, name)
        self.engine = make_engine(self.s, device)

    def make(self, index: int) -> list[str | None]:
        """Each image's file in index.csv (None: it failed), those an earlier try recorded included."""
        done = self.s.ledger.done()  # fresh: a retried batch skips what its first try recorded
        return make_batch(self.engine, self.s.plan.batches[index], done, self.s.ledger, self.s.out)


def run_on_ray(job_path: Path, address: str | None, new: bool = False, show_bar: bool = True) -> dict:
    """`address`: 'local' starts a new cluster here, 'auto' or None finds a running one (RAY_ADDRESS or
    `ray start` on this machine), anything else is the address of one (host:port, ray://host:10001)."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(
            "--ray needs Ray, which is not installed", "pip install 'lora-scripts[ray]'"
        ) from exc

    load_job(job_path)  # a bad job file: one sentence before any cluster is touched
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    workers = gpus or max(1, int(ray.cluster_resources().get("CPU", 1)))
    device, resources = ("cuda", {"num_gpus": 1}) if gpus else ("cpu", {"num_cpus": 1})
    s = start_job(job_path, new, Shard(0, 1, device))  # the workers' device: the same facts as theirs
    todo = [i for i, b in enumerate(s.plan.batches) if any((w.id, w.n) not in s.done for w in b)]
    maker = ray.remote(max_restarts=RESTARTS, max_task_retries=RESTARTS, **resources)(BatchMaker)
    actors = [
        maker.remote(str(job_path.resolve()), f"ray{i}", device) for i in range(min(workers, len(todo)))
    ]
    made, died, stopped = 0, None, False
    try:
        if todo:
            made, died, stopped = _make_shown(ray, actors, s, todo, show_bar)
    finally:  # also on a second Ctrl-C: no actor is left running
        for actor in actors:
            ray.kill(actor)
    index, failed = finish_job(s, f"{job_path.stem}: {s.out.name}")  # what was made, also when stopped
    if died is not None:
        raise worker_failed(died, index, len(s.plan.works))
    if stopped:
        raise KeyboardInterrupt  # the CLI says "Stopped by the user" and exits 130
    return {"made": made, "index": index, "failed": failed}


def _make_shown(
    ray, actors: list, s: Started, todo: list[int], show_bar: bool
) -> tuple[int, Exception | None, bool]:
    """_make_all with a one-process run's progress events, bar and Ctrl-C: (images made, an actor's error,
    whether a stop was asked for). Counts are of the whole job; an image is done once it is recorded or
    failed, whichever try of its batch made it."""
    left = {i: [(w.id, w.n) not in s.done for w in s.plan.batches[i]] for i in todo}
    total = sum(len(b) for b in s.plan.batches)
    counts = {"total": total, "done": total - sum(map(sum, left.values())), "per_item": s.job.images_per_item}
    events, started, tried, made = s.out.progress(), time.time(), 0, 0
    events.event("start", rank=0, world=1, pid=os.getpid(), workers=len(actors), **counts)
    with GracefulStop(_say_stopping) as stop, bar(show_bar, counts, Shard(0, 1, "ray")) as tick:

        def finished(index: int, files: list[str | None]) -> None:
            nonlocal tried, made
            mine = [f for f, new in zip(files, left[index], strict=True) if new]  # not done before this run
            tried, made = tried + len(mine), made + sum(1 for f in mine if f)
            tell_batch(events, tick, counts, 0, mine, tried / max(time.time() - started, 1e-9) * 60)

        died = _make_all(ray, actors, todo, finished, lambda: stop.requested)
    state = "failed" if died is not None else "stopped" if stop.requested else "done"
    events.event("end", rank=0, state=state, done=counts["done"])
    return made, died, stop.requested


def _make_all(
    ray, actors: list, todo: list[int], finished: Callable[[int, list], None], stopping=lambda: False
) -> Exception | None:
    """Each batch of `todo` on the next free actor, finished(index, its files) as each one is recorded; the
    error of an actor Ray gave up on, if one was. After such an error, or once stopping() holds, no batch is
    started, and the ones running on the actors are finished and recorded."""
    from ray.exceptions import OutOfMemoryError, RayActorError, RayTaskError

    queue, idle, running = list(todo), list(actors), {}
    died = None
    while running or (queue and died is None and not stopping()):
        while idle and queue and died is None and not stopping():
            actor, index = idle.pop(), queue.pop(0)
            running[actor.make.remote(index)] = (actor, index)
        ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)  # a second Ctrl-C stops within 1 s
        if not ready:
            continue
        actor, index = running.pop(ready[0])
        try:
            files = ray.get(ready[0])
        except (RayActorError, OutOfMemoryError) as exc:  # the actor's restarts are used up
            died = died or exc
            continue
        except RayTaskError as exc:  # make() raised (the actor lives): stop the same way, its error after
            died = died or exc
            continue
        idle.append(actor)
        finished(index, files)
        log.debug("Ray: batch %d made", index)
    return died


def _say_stopping() -> None:
    from ..console import console

    console.print("[yellow]Stopping after the running batches (Ctrl-C again to stop now)...[/]")


def worker_failed(err: Exception, index: int, total: int) -> Exception:
    """What the driver raises once the recorded images are merged: a batch's own error as the worker raised
    it (one of ours prints its sentence, as in a one-process run), or worker_died's sentence."""
    from ray.exceptions import RayActorError, RayTaskError

    if isinstance(err, RayTaskError) and not isinstance(err, RayActorError):
        cause = getattr(err, "cause", None)
        return cause if isinstance(cause, Exception) else err
    return worker_died(err, index, total)


def worker_died(err: Exception, index: int, total: int) -> LoraScriptsError:
    """The sentence for a job stopped because Ray gave up on an actor (Ray's own reason: --debug)."""
    if getattr(err, "actor_init_failed", False):  # raised in __init__ (import, start_job): its last line
        last = str(err).strip().splitlines()[-1]
        reason = re.sub(r"^[\w.]*?(\w+Error|Exception): ", "", last)
        return LoraScriptsError(
            f"A Ray worker could not start: {reason.rstrip('.')}",
            "Every node needs lora-scripts installed and must read the job file, items, base model and LoRAs "
            "at the same paths as this machine (a shared folder); see docs/catalogue.md, A Ray cluster",
        )
    return LoraScriptsError(
        f"A Ray worker died {RESTARTS + 1} times (Ray restarted it {RESTARTS} times), so the job stopped "
        f"with {index} of {total} images made and recorded in index.csv",
        "If it ran out of memory, lower batch_size, width or height; then run the same command again to "
        "make the rest (--debug shows Ray's reason)",
    )
