"""`lora-scripts batch JOB.yaml --ray ADDRESS`: the job's batches as tasks of Ray actors (one pipeline per
actor, one GPU each on a GPU cluster). Ray restarts a dead actor and retries its batch, at most RESTARTS times
per actor; an actor that dies once more stops the job with one sentence, after the batches running elsewhere
are finished. Every actor records into its own index part, so a retried batch cannot put an (id, n) into
index.csv twice, and the driver merges the parts as a single process does.

Each actor opens the job itself (start_job), on whichever node Ray puts it: the job file at the driver's
absolute path, and the items, lora_dir, `loras:` files, a base_model file and a local output_dir at the paths
the job file gives (relative ones from the job file's folder) must be the same files on every node."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

from ..errors import ConfigError, LoraScriptsError
from .config import load_job
from .ledger import open_ledger
from .run import finish_job, make_engine, save_image, start_job
from .shard import Shard

log = logging.getLogger(__name__)
RESTARTS = 3  # per actor: a worker that dies on every batch (out of memory, say) stops the job, not loops


class BatchMaker:
    """A Ray actor: the job's pipeline, loaded once; make(i) renders batch i and records what is missing."""

    def __init__(self, job_path: str, name: str, device: str):
        import torch

        if device == "cpu":
            torch.set_num_threads(1)  # one CPU per actor
        self.s = start_job(Path(job_path), False, Shard(1, 2, device))  # not rank 0: no merge, no failed rows
        self.s.ledger = open_ledger(self.s.out, name)
        self.engine = make_engine(self.s, device)

    def make(self, index: int) -> int:
        batch = self.s.plan.batches[index]
        done = self.s.ledger.done()  # fresh: a retried batch skips what its first try recorded
        started = time.time()
        images = self.engine.render(batch)
        seconds = (time.time() - started) / len(batch)
        out, ledger = self.s.out, self.s.ledger
        missing = [(w, im) for w, im in zip(batch, images, strict=True) if (w.id, w.n) not in done]
        made = sum(1 for w, im in missing if save_image(w, im, self.engine, ledger, out, seconds))
        ledger.commit()  # an object store: the batch's rows, one object, after its images
        return made


def run_on_ray(job_path: Path, address: str | None, new: bool = False) -> dict:
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
    try:
        made, died = _make_all(ray, actors, todo)
    finally:
        for actor in actors:
            ray.kill(actor)
    index, failed = finish_job(s, f"{job_path.stem}: {s.out.name}")  # what was made, also when stopped
    if died is not None:
        raise worker_failed(died, index, len(s.plan.works))
    return {"made": made, "index": index, "failed": failed}


def _make_all(ray, actors: list, todo: list[int]) -> tuple[int, Exception | None]:
    """Each batch of `todo` on the next free actor: (images made, the error of an actor Ray gave up on). After
    such an error no batch is started, and the ones running on other actors are finished and recorded."""
    from ray.exceptions import OutOfMemoryError, RayActorError, RayTaskError

    queue, idle, running = list(todo), list(actors), {}
    made, died = 0, None
    while running or (queue and died is None):
        while idle and queue and died is None:
            actor = idle.pop()
            running[actor.make.remote(queue.pop(0))] = actor
        [ready], _ = ray.wait(list(running), num_returns=1)
        actor = running.pop(ready)
        try:
            made += ray.get(ready)
        except (RayActorError, OutOfMemoryError) as exc:  # the actor's restarts are used up
            died = died or exc
            continue
        except RayTaskError as exc:  # make() raised (the actor lives): stop the same way, its error after
            died = died or exc
            continue
        idle.append(actor)
        log.info("Ray: %d image(s) made", made)
    return made, died


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
