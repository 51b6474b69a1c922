"""What a config means for its base model's family: the defaults that depend on it (SDXL trains at 1024 px
unless the config names a resolution) and hints about its choices. Read from the file header only, so the
dry run shows the same resolved config the run uses; the config itself is never changed, a copy is."""

from __future__ import annotations

import logging

from ..config import Config
from ..models.detect import locate
from ..models.registry import model_family

log = logging.getLogger(__name__)


def with_family_defaults(cfg: Config) -> Config:
    if cfg.data is None:  # the LLM route has no image sizes
        return cfg
    info = model_family(locate(cfg.model.base_model, cfg.model.allow_pickle), cfg.model).info
    if cfg.network.train_text_encoder and info.text_encoder_hint:
        log.warning("%s", info.text_encoder_hint)
    data, given = cfg.data, cfg.data.model_fields_set
    if "resolution" in given or data.resolution == info.default_resolution:
        return cfg
    update = {"resolution": info.default_resolution}
    if "max_bucket_reso" not in given:
        update["max_bucket_reso"] = max(data.max_bucket_reso, 2 * info.default_resolution)
    log.info(
        "%s base model: training at %d px (its native size; set resolution to change it)",
        info.display_name,
        info.default_resolution,
    )
    return cfg.model_copy(update={"data": data.model_copy(update=update)})
