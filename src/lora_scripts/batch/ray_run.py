"""`lora-scripts batch JOB.yaml --ray [ADDRESS]`: the job's batches as tasks of Ray actors (one pipeline per
actor, one GPU each on a GPU cluster). Ray restarts a dead actor and retries its task (max_restarts,
max_task_retries); every actor records into its own index part, so a retried batch cannot put an (id, n)
into index.csv twice, and the driver merges the parts as a single process does."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ..errors import ConfigError
from .config import load_job
from .ledger import open_ledger
from .run import finish_job, make_engine, save_image, start_job
from .shard import Shard

log = logging.getLogger(__name__)


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

    def pid(self) -> int:
        import os

        return os.getpid()


def run_on_ray(job_path: Path, address: str | None, new: bool = False) -> dict:
    try:
        import ray
        from ray.util import ActorPool
    except ImportError as exc:
        raise ConfigError(
            "--ray needs Ray, which is not installed", "pip install 'lora-scripts[ray]'"
        ) from exc

    load_job(job_path)  # a bad job file: one sentence before any cluster is touched
    if not ray.is_initialized():
        ray.init(address=None if address in (None, "local") else address, log_to_driver=False)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    workers = gpus or max(1, int(ray.cluster_resources().get("CPU", 1)))
    device, resources = ("cuda", {"num_gpus": 1}) if gpus else ("cpu", {"num_cpus": 1})
    s = start_job(job_path, new, Shard(0, 1, device))  # the workers' device: the same facts as theirs
    todo = [i for i, b in enumerate(s.plan.batches) if any((w.id, w.n) not in s.done for w in b)]
    maker = ray.remote(max_restarts=-1, max_task_retries=-1, **resources)(BatchMaker)
    actors = [
        maker.remote(str(job_path.resolve()), f"ray{i}", device) for i in range(min(workers, len(todo)))
    ]
    made = 0
    for count in ActorPool(actors).map_unordered(lambda a, i: a.make.remote(i), todo):
        made += count
        log.info("Ray: %d image(s) made", made)
    for actor in actors:
        ray.kill(actor)
    index, failed = finish_job(s, f"{job_path.stem}: {s.out.name}")
    return {"made": made, "index": index, "failed": failed}
