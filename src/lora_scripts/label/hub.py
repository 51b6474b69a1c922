"""Reaching the model hub for a hub id, in seconds: the cache when offline, one quick look at the hub (the one
HF_ENDPOINT names, so mirrors work), and a sentence instead of huggingface_hub's minute of retries.

huggingface_hub retries a file it cannot reach five times with back-off (~30 s per file, and a model has
several); one HEAD request without retries tells us the same in a few seconds, before anything is loaded.
"""

from __future__ import annotations

import inspect
import logging
import os
from dataclasses import replace

from ..errors import ModelError
from .source import EXAMPLES, KINDS, MIRROR, ModelRef, bring_in, wrong_kind

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 5.0  # seconds for the one look at the hub; a mirror that answers at all answers in less
PROBE_FILES = {
    "classify": ("config.json",),
    "caption": ("config.json",),
    "tags": ("selected_tags.csv", "model.onnx"),
}


def reach(ref: ModelRef) -> ModelRef:
    """``ref`` ready to load: unchanged when the hub answers, ``cache_only`` when the hub is off or out of
    reach but the model is cached, else a ModelError saying how to bring the model in."""
    if ref.local:
        return ref
    quiet_hub_logging()
    cached = _cached(ref)
    if offline():
        if cached:
            return replace(ref, cache_only=True)
        raise ModelError(
            f"The {KINDS[ref.backend]} model '{ref.name}' is not on this machine, and HF_HUB_OFFLINE is set, "
            "so it is not downloaded",
            f"Unset HF_HUB_OFFLINE to download it (through a mirror by setting HF_ENDPOINT, e.g. "
            f"HF_ENDPOINT={MIRROR}), or {bring_in(ref.name)}",
        )
    endpoint = hub_endpoint()
    problem = _probe(ref, endpoint)
    if problem is None:
        return ref
    kind, reason = problem
    if kind == "missing repo":
        raise ModelError(
            f"There is no model '{ref.name}' on the model hub at {endpoint} (or it is private or gated)",
            f"Check the spelling on the model's page, or pass {EXAMPLES[ref.backend]}",
        )
    if kind == "missing file":
        raise wrong_kind(ref, f"hub model without {PROBE_FILES[ref.backend][0]}")
    if cached:
        log.warning(
            "The model hub at %s cannot be reached (%s); using the copy of '%s' already on this machine",
            endpoint, reason, ref.name,
        )  # fmt: skip
        return replace(ref, cache_only=True)
    raise ModelError(
        f"The {KINDS[ref.backend]} model '{ref.name}' is not on this machine, and the model hub at "
        f"{endpoint} cannot be reached ({reason})",
        f"To use a mirror set HF_ENDPOINT (e.g. HF_ENDPOINT={MIRROR}), or {bring_in(ref.name)}",
    )


def offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) as set now, else as huggingface_hub read it at import."""
    from huggingface_hub import constants

    values = [os.environ.get(name) for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")]
    if all(value is None for value in values):
        return bool(constants.HF_HUB_OFFLINE)
    return any((value or "").strip().upper() in {"1", "ON", "YES", "TRUE"} for value in values)


def hub_endpoint() -> str:
    """Where huggingface_hub downloads from: HF_ENDPOINT (a mirror, e.g. hf-mirror.com) or huggingface.co."""
    from huggingface_hub import constants

    return constants.ENDPOINT.rstrip("/")


def quiet_hub_logging() -> None:
    """huggingface_hub adds its own stderr handler when first imported, so each of its warnings was printed
    twice (that handler, then ours); its records go through our handler only, at the level set for it."""
    from huggingface_hub.utils import logging as hub_logging

    library = logging.getLogger("huggingface_hub")
    for handler in list(library.handlers):
        if type(handler) is logging.StreamHandler:
            library.removeHandler(handler)
    debug = logging.getLogger().level <= logging.DEBUG
    hub_logging.set_verbosity(logging.DEBUG if debug else logging.ERROR)


def _cached(ref: ModelRef) -> bool:
    from huggingface_hub import try_to_load_from_cache

    files = PROBE_FILES[ref.backend]
    return all(isinstance(try_to_load_from_cache(ref.location, name), str) for name in files)


def _probe(ref: ModelRef, endpoint: str) -> tuple[str, str] | None:
    """None when the hub has the model's first file; else ("missing repo" | "missing file" | "unreachable",
    reason in a few words). One HEAD request, no retries."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.utils import HfHubHTTPError

    url = hf_hub_url(ref.location, PROBE_FILES[ref.backend][0], endpoint=endpoint)
    kwargs = {"timeout": PROBE_TIMEOUT, "endpoint": endpoint}
    if "retry_on_errors" in inspect.signature(get_hf_file_metadata).parameters:  # huggingface_hub >= 1.x
        kwargs["retry_on_errors"] = False
    try:
        get_hf_file_metadata(url, **kwargs)
    except HfHubHTTPError as exc:
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
        code = response.headers.get("X-Error-Code") if response is not None else None
        if code == "EntryNotFound":
            return "missing file", "no such file"
        if code in {"RepoNotFound", "GatedRepo"} or status in {401, 403, 404}:
            return "missing repo", f"HTTP {status}"
        return "unreachable", f"HTTP {status}" if status else _first_line(exc)
    except Exception as exc:  # noqa: BLE001 -- refused, timed out, no DNS, proxy or TLS trouble
        return "unreachable", _first_line(exc)
    return None


def _first_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0] or type(exc).__name__
    return text[:120]
