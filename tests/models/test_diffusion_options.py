"""kohya's noise and loss options on the tiny SD model: each changes exactly what it says, by the published
formula written out here (never asked of the code under test)."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from lora_scripts.config import build_config, load_config
from lora_scripts.data import scan_dataset
from lora_scripts.errors import ConfigError
from lora_scripts.models import diffusion
from lora_scripts.models.loader import load_components
from lora_scripts.models.sd import StableDiffusion


def _model(base_config, **over) -> tuple[StableDiffusion, object]:
    cfg = build_config({**base_config, **over})
    return StableDiffusion(load_components(cfg.model)), cfg


def _alpha_bar(model, t: torch.Tensor) -> torch.Tensor:
    """The scheduler's cumulative alphas, in float64, for the formulas."""
    return model.noise_scheduler.alphas_cumprod.double()[t]


class _Spy:
    """Records what reached the UNet (the noisy input) and what the loss compared (prediction, target)."""

    def __init__(self, model: StableDiffusion):
        self.model = model
        real_predict, real_target = model.predict, model.target
        self.real_predict, self.real_target = real_predict, real_target

        def predict(noisy, t, cond, sizes):
            self.noisy, self.t = noisy.detach().clone(), t.clone()
            self.pred = real_predict(noisy, t, cond, sizes)
            return self.pred

        def target(latents, noise, t):
            self.latents, self.noise = latents.detach().clone(), noise.detach().clone()
            self.target = real_target(latents, noise, t)
            return self.target

        model.predict, model.target = predict, target


def _run_loss(model, cfg, seed=0) -> tuple[torch.Tensor, _Spy]:
    spy = _Spy(model)
    items = scan_dataset(cfg.data).items[:4]
    items = [i for i in items if i.bucket == items[0].bucket]
    with torch.no_grad():
        loss = model.loss(items, cfg.data, cfg.train, random.Random(0), torch.Generator().manual_seed(seed))
    return loss, spy


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_min_snr_weights_are_min_snr_gamma_over_snr(base_config, prediction):
    model, cfg = _model(base_config, prediction_type=prediction, min_snr_gamma=5)
    t = torch.tensor([0, 50, 200, 400, 700, 999])
    a = _alpha_bar(model, t)
    snr = a / (1 - a)
    want = torch.minimum(snr, torch.tensor(5.0, dtype=torch.float64))
    want = want / (snr + 1) if prediction == "v_prediction" else want / snr
    got = diffusion.snr_weights(model.noise_scheduler, t, 5.0, prediction == "v_prediction")
    assert torch.allclose(got.double(), want, rtol=1e-4), (got, want)
    assert got[0] < 0.01 and got[-1] == pytest.approx(1.0 if prediction == "epsilon" else float(want[-1]))

    # ...and the loss of a batch is the mean of each sample's MSE times its weight; a seed whose batch
    # holds a low-noise timestep (SNR above gamma), where the weight is not 1
    for seed in range(100):
        loss, spy = _run_loss(model, cfg, seed)
        if int(spy.t.min()) < 80:
            break
    a = _alpha_bar(model, spy.t)
    snr = a / (1 - a)
    weight = torch.minimum(snr, torch.tensor(5.0, dtype=torch.float64))
    weight = weight / (snr + 1) if prediction == "v_prediction" else weight / snr
    per_sample = ((spy.pred.double() - spy.target.double()) ** 2).mean(dim=(1, 2, 3))
    assert float(loss) == pytest.approx(float((per_sample * weight).mean()), rel=1e-4)
    assert float(loss) != pytest.approx(float(per_sample.mean()), rel=1e-3)


def test_without_options_the_loss_is_plain_mse(base_config):
    model, cfg = _model(base_config)
    loss, spy = _run_loss(model, cfg)
    assert float(loss) == pytest.approx(float(F.mse_loss(spy.pred.double(), spy.target.double())), rel=1e-5)
    a = _alpha_bar(model, spy.t).view(-1, 1, 1, 1)
    want = a.sqrt() * spy.latents.double() + (1 - a).sqrt() * spy.noise.double()
    assert torch.allclose(spy.noisy.double(), want, atol=1e-5)  # the input carries exactly the target noise


@pytest.mark.parametrize("schedule", ["constant", "exponential", "snr"])
@pytest.mark.parametrize("kind", ["huber", "smooth_l1"])
def test_huber_losses_follow_kohyas_pseudo_huber(base_config, kind, schedule):
    model, cfg = _model(base_config, loss_type=kind, huber_c=0.2, huber_schedule=schedule)
    loss, spy = _run_loss(model, cfg)
    t = spy.t.double()
    if schedule == "constant":
        c = torch.full_like(t, 0.2)
    elif schedule == "exponential":  # 1 at t=0 down to huber_c at t=1000
        c = torch.exp(torch.log(torch.tensor(0.2, dtype=torch.float64)) * t / 1000)
    else:
        a = _alpha_bar(model, spy.t)
        sigma = ((1 - a) / a).sqrt()
        c = (1 - 0.2) / (1 + sigma) ** 2 + 0.2
    c = c.view(-1, 1, 1, 1)
    diff2 = (spy.pred.double() - spy.target.double()) ** 2
    element = 2 * ((diff2 + c**2).sqrt() - c)
    if kind == "huber":
        element = element * c
    assert float(loss) == pytest.approx(float(element.mean()), rel=1e-4)
    assert float(loss) != pytest.approx(float(diff2.mean()), rel=1e-2)


def test_l1_loss(base_config):
    model, cfg = _model(base_config, loss_type="l1")
    loss, spy = _run_loss(model, cfg)
    assert float(loss) == pytest.approx(
        float((spy.pred.double() - spy.target.double()).abs().mean()), rel=1e-5
    )


def _noise(latents, **train):
    cfg = build_config({"base_model": "x.safetensors", "train_data_dir": "d", **train}).train
    return diffusion.make_noise(latents, cfg, torch.Generator().manual_seed(7))


def test_noise_offset_shifts_each_channels_mean_by_one_draw():
    latents = torch.zeros(64, 4, 32, 32)
    plain = _noise(latents)
    shifted = _noise(latents, noise_offset=0.5)
    # The same Gaussian noise first, then one N(0, 1) value per (image, channel) times the offset
    delta = shifted - plain
    per_channel = delta[:, :, :1, :1]
    assert torch.allclose(delta, per_channel.expand_as(delta), atol=1e-6)  # constant over the image
    assert float(per_channel.std()) == pytest.approx(0.5, rel=0.15)  # offset * N(0, 1)
    assert float(plain.mean(dim=(2, 3)).std()) < 0.05  # without the offset the channel means stay ~0


def test_adaptive_noise_scale_adds_the_channel_mean_to_the_offset():
    latents = torch.zeros(8, 4, 16, 16)
    latents[:, 0] = 2.0  # channel 0 has mean 2 (absolute), the others 0
    latents[:, 1] = -1.0
    fixed = _noise(latents, noise_offset=0.1) - _noise(latents)
    adaptive = _noise(latents, noise_offset=0.1, adaptive_noise_scale=0.05) - _noise(latents)
    ratio = adaptive[:, :, 0, 0] / fixed[:, :, 0, 0]  # the same draw times (offset + scale * |mean|) / offset
    want = torch.tensor([(0.1 + 0.05 * 2) / 0.1, (0.1 + 0.05 * 1) / 0.1, 1.0, 1.0])
    assert torch.allclose(ratio, want.expand_as(ratio), rtol=1e-4)


def test_adaptive_noise_scale_without_noise_offset_is_refused(base_config):
    with pytest.raises(ConfigError, match="adaptive_noise_scale.*noise_offset"):
        build_config({**base_config, "adaptive_noise_scale": 0.01})


def test_multires_noise_adds_low_frequencies_and_keeps_unit_std():
    latents = torch.zeros(16, 4, 64, 64)
    plain = _noise(latents)
    multi = _noise(latents, multires_noise_iterations=6, multires_noise_discount=0.8)
    assert float(multi.std()) == pytest.approx(1.0, abs=1e-5)  # rescaled to std 1

    # white noise has almost no correlation between neighbouring pixels; the coarse layers add plenty
    def neighbour_corr(x):
        return float(torch.corrcoef(torch.stack([x[..., :-1].flatten(), x[..., 1:].flatten()]))[0, 1])

    assert abs(neighbour_corr(plain)) < 0.02
    assert neighbour_corr(multi) > 0.15
    # more discount -> weaker coarse layers -> less correlation
    weak = _noise(latents, multires_noise_iterations=6, multires_noise_discount=0.1)
    assert neighbour_corr(weak) < neighbour_corr(multi)


def test_ip_noise_gamma_perturbs_the_input_but_not_the_target(base_config):
    model, cfg = _model(base_config)
    _, plain = _run_loss(model, cfg)
    model, cfg = _model(base_config, ip_noise_gamma=0.5)
    _, ip = _run_loss(model, cfg)
    assert torch.equal(plain.noise, ip.noise) and torch.equal(plain.t, ip.t)
    assert torch.equal(plain.target, ip.target)  # the target is the unperturbed noise
    a = _alpha_bar(model, ip.t).view(-1, 1, 1, 1)
    clean_input = a.sqrt() * ip.latents.double() + (1 - a).sqrt() * ip.noise.double()
    extra = (ip.noisy.double() - clean_input) / (1 - a).sqrt()  # the perturbation, in noise units
    assert float(extra.std()) == pytest.approx(0.5, rel=0.1)  # gamma * N(0, 1)
    assert torch.allclose(plain.noisy.double(), clean_input, atol=1e-5)


def test_zero_terminal_snr_rescales_the_training_schedule(base_config, tmp_path):
    model, cfg = _model(base_config, prediction_type="v_prediction", zero_terminal_snr=True)
    before = model.noise_scheduler.alphas_cumprod.double().clone()
    index = scan_dataset(cfg.data)
    model.prepare_inputs(index, cfg.data, cfg.train, ["unet"], tmp_path)
    after = model.noise_scheduler.alphas_cumprod.double()
    # Lin et al.: sqrt(alpha_bar) shifted so the last is 0 and scaled so the first is unchanged
    root = before.sqrt()
    want = ((root - root[-1]) * root[0] / (root[0] - root[-1])) ** 2
    assert torch.allclose(after, want, atol=1e-6)
    assert float(after[-1]) == 0.0 and float(before[-1]) > 0
    loss, _ = _run_loss(model, cfg)
    assert torch.isfinite(loss)
    # samples keep the base model's schedule (as kohya's do): what the LoRA meets in WebUI or ComfyUI
    sampling = model.pipeline().scheduler
    assert not sampling.config.get("rescale_betas_zero_snr", False)
    assert torch.allclose(sampling.alphas_cumprod.double(), before, atol=1e-6)


def test_bad_loss_values_are_one_sentence(base_config):
    with pytest.raises(ConfigError, match="loss_type.*one of"):
        build_config({**base_config, "loss_type": "l3"})
    with pytest.raises(ConfigError, match="min_snr_gamma"):
        build_config({**base_config, "min_snr_gamma": -1})


def test_kohyas_v_parameterization_selects_v_prediction(base_config, tmp_path):
    cfg = build_config({**base_config, "v_parameterization": True})
    assert cfg.model.prediction_type == "v_prediction"
    model = StableDiffusion(load_components(cfg.model))
    assert model.prediction_type == "v_prediction"  # the loss's target is the velocity
    assert model.noise_scheduler.config.prediction_type == "v_prediction"
    # false is kohya's default: our `auto` (which still detects SD2-v checkpoints), not a forced epsilon
    assert build_config({**base_config, "v_parameterization": False}).model.prediction_type == "auto"
    with pytest.raises(ConfigError, match="set twice"):
        build_config({**base_config, "v_parameterization": True, "prediction_type": "epsilon"})
    with pytest.raises(ConfigError, match="'v_parameterization'.*'yes'.*true or false") as err:
        build_config({**base_config, "v_parameterization": "yes"})
    assert "\n" not in str(err.value)
    (tmp_path / "c.yaml").write_text(f"base_model: {base_config['base_model']}\ntrain_data_dir: d\n")
    over = load_config(tmp_path / "c.yaml", ["v_parameterization=true"])
    assert over.model.prediction_type == "v_prediction"


def test_noise_offset_random_strength_draws_one_strength_per_batch():
    latents = torch.zeros(32, 4, 8, 8)
    plain = _noise(latents)
    got = _noise(latents, noise_offset=0.4, noise_offset_random_strength=True)
    gen = torch.Generator().manual_seed(7)  # the same draws, in the order kohya makes them
    torch.randn(latents.shape, generator=gen)
    strength = float(torch.rand(1, generator=gen)) * 0.4
    offset = torch.randn(32, 4, 1, 1, generator=gen)
    assert 0 < strength < 0.4
    assert torch.allclose(got - plain, (strength * offset).expand_as(got), atol=1e-6)


def test_ip_noise_gamma_random_strength_varies_per_batch(base_config):
    strengths = []
    for seed in range(6):
        model, cfg = _model(base_config, ip_noise_gamma=0.5, ip_noise_gamma_random_strength=True)
        _, spy = _run_loss(model, cfg, seed)
        a = _alpha_bar(model, spy.t).view(-1, 1, 1, 1)
        clean = a.sqrt() * spy.latents.double() + (1 - a).sqrt() * spy.noise.double()
        strengths.append(float(((spy.noisy.double() - clean) / (1 - a).sqrt()).std()))
    assert all(s < 0.5 * 1.1 for s in strengths)  # never above gamma
    assert max(strengths) - min(strengths) > 0.1  # a new strength each batch, not always gamma


@pytest.mark.parametrize(
    ("prediction", "over", "weight"),
    [  # kohya's custom_train_functions formulas, on s = min(SNR, 1000)
        ("epsilon", {"debiased_estimation_loss": True}, lambda s: 1 / s.sqrt()),
        ("v_prediction", {"debiased_estimation_loss": True}, lambda s: 1 / (s + 1)),
        ("v_prediction", {"scale_v_pred_loss_like_noise_pred": True}, lambda s: s / (s + 1)),
        ("epsilon", {"v_pred_like_loss": 0.5}, lambda s: 1 + 0.5 * (s + 1) / s),
        (
            "v_prediction",
            {"scale_v_pred_loss_like_noise_pred": True, "min_snr_gamma": 5},
            lambda s: s / (s + 1) * torch.clamp(s, max=5.0) / (s + 1),
        ),
    ],
)
def test_kohyas_snr_loss_weightings(base_config, prediction, over, weight):
    model, cfg = _model(base_config, prediction_type=prediction, **over)
    loss, spy = _run_loss(model, cfg, seed=3)
    a = _alpha_bar(model, spy.t)
    s = torch.clamp(a / (1 - a), max=1000.0)
    per_sample = ((spy.pred.double() - spy.target.double()) ** 2).mean(dim=(1, 2, 3))
    assert float(loss) == pytest.approx(float((per_sample * weight(s)).mean()), rel=1e-4)
    assert float(loss) != pytest.approx(float(per_sample.mean()), rel=1e-3)


def test_clip_skip_reads_the_penultimate_layer_as_diffusers_pipelines_do(base_config, tmp_path, monkeypatch):
    from diffusers import StableDiffusionPipeline

    from lora_scripts.models.render import RenderRequest, text_model_alias

    model, cfg = _model(base_config, clip_skip=2)
    model.prepare_inputs(scan_dataset(cfg.data), cfg.data, cfg.train, ["unet"], tmp_path)
    ids = model.tokenize(["a neon phone, metal"])
    with torch.no_grad():
        got = model.encode_prompt(ids)
        out = model.text_encoder(ids, output_hidden_states=True)
        norm = getattr(
            model.text_encoder, "text_model", model.text_encoder
        ).final_layer_norm  # transformers 5
        want = norm(out.hidden_states[-2])
        assert torch.allclose(got, want, atol=1e-6)
        assert not torch.allclose(got, out.last_hidden_state, atol=1e-3)
        # diffusers counts from 0: its clip_skip=1 is WebUI's and kohya's 2
        pipe = model.pipeline()
        with text_model_alias(pipe.text_encoder):  # what render does around diffusers' call
            pipe_embeds = pipe.encode_prompt("a neon phone, metal", "cpu", 1, False, clip_skip=1)[0]
        assert torch.allclose(got, pipe_embeds, atol=1e-5)
    assert model.text_cache is not None and torch.allclose(
        model.text_cache.get([scan_dataset(cfg.data).items[0].caption])[0],
        model.encode_prompt(model.tokenize([scan_dataset(cfg.data).items[0].caption]))[0].detach(),
        atol=1e-6,
    )  # the cached captions were encoded with clip_skip too

    seen = []
    real = StableDiffusionPipeline.__call__

    def call(self, *args, **kwargs):
        seen.append(kwargs.get("clip_skip"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(StableDiffusionPipeline, "__call__", call)
    model.render([RenderRequest("a phone", steps=1, width=64, height=64)])
    assert seen == [1]  # training samples use the same layer


def test_min_and_max_timestep_bound_the_training_timesteps(base_config):
    model, cfg = _model(base_config, min_timestep=200, max_timestep=300)
    ts = []
    for seed in range(40):
        _, spy = _run_loss(model, cfg, seed)
        ts += spy.t.tolist()
        model.predict, model.target = spy.real_predict, spy.real_target  # one spy at a time
    assert min(ts) >= 200 and max(ts) < 300 and len(set(ts)) > 20
    with pytest.raises(ConfigError, match=r"min_timestep \(500\) must be below max_timestep \(400\)"):
        build_config({**base_config, "min_timestep": 500, "max_timestep": 400})


def test_max_token_length_reads_long_captions_in_chunks_of_75(base_config, tmp_path):
    model, cfg = _model(base_config, max_token_length=150)
    model.prepare_inputs(scan_dataset(cfg.data), cfg.data, cfg.train, ["unet"], tmp_path)
    tok = model.tokenizer
    caption = ", ".join(f"tag{i} red metal" for i in range(60))
    body = tok(caption).input_ids[1:-1]  # the caption's own tokens, no <BOS>/<EOS>
    assert len(body) > 75  # long enough to need the second chunk
    ids = model.tokenize([caption])
    assert tuple(ids.shape) == (1, 2, 77)
    padded = body[:150] + [tok.pad_token_id] * 150
    for k in range(2):
        middle = padded[75 * k : 75 * k + 75]
        assert ids[0, k, 0] == tok.bos_token_id and ids[0, k, 1:76].tolist() == middle
    with torch.no_grad():
        got = model.encode_prompt(ids)
        states = [model.text_encoder(ids[:, k])[0] for k in range(2)]  # each chunk on its own
    assert tuple(got.shape) == (1, 152, states[0].shape[-1])
    want = torch.cat([states[0][:, :1], states[0][:, 1:76], states[1][:, 1:76], states[1][:, 76:]], dim=1)
    assert torch.allclose(got, want, atol=1e-6)
    loss, _ = _run_loss(model, cfg)  # the UNet takes the 152-token context; cached captions too
    assert torch.isfinite(loss) and model.text_cache is not None
    assert tuple(model.text_cache.get([scan_dataset(cfg.data).items[0].caption]).shape[1:2]) == (152,)


def test_sd2_chunks_end_with_eos_because_its_padding_is_not_eos(tmp_path):
    """SD 2.x pads with token 0, not <EOS>: a chunk cut mid-caption gets <EOS> last, and an empty chunk
    reads <BOS> <EOS> <PAD>... (kohya's rule), so every chunk is a well-formed CLIP sequence."""
    from lora_scripts.models.long_prompts import chunked_ids
    from lora_scripts.models.tiny import save_tiny_model

    sd2 = save_tiny_model(tmp_path, family="sd2")["single_file"]
    cfg = build_config({"base_model": str(sd2), "train_data_dir": "d"})
    tok = load_components(cfg.model).tokenizer
    bos, eos, pad = tok.bos_token_id, tok.eos_token_id, tok.pad_token_id
    assert pad != eos
    long_caption = ", ".join(f"tag{i} red metal" for i in range(18))
    body = tok(long_caption).input_ids[1:-1]
    assert 75 < len(body) < 149
    ids = chunked_ids(tok, [long_caption, "a phone"], 150)
    assert ids[0, 0].tolist() == [bos, *body[:75], eos]  # cut mid-caption: <EOS> put last
    rest = body[75:]
    assert ids[0, 1].tolist() == [bos, *rest, eos] + [pad] * (75 - len(rest))
    short = tok("a phone").input_ids[1:-1]
    assert ids[1, 0].tolist() == [bos, *short, eos] + [pad] * (75 - len(short))
    assert ids[1, 1].tolist() == [bos, eos] + [pad] * 75  # the empty chunk
