"""Every registered model: any size, tiles agree, official layouts load strictly."""

from __future__ import annotations

import functools
import json
import math

import numpy as np
import pytest
import torch

from deblurcli.errors import WeightsError
from deblurcli.models import build_model, get_spec, list_models
from deblurcli.models._builder import create_model, load_model, save_weights
from deblurcli.models.deblurgan_v1 import NLayerDiscriminator
from deblurcli.models.layers import fold_batch_norms, set_statistics
from deblurcli.ops.tiling import tiled_forward
from tests.conftest import (
    LAYOUTS,
    OFFICIAL_LAYOUTS,
    official_state_dict,
    save_official_v1,
    save_official_v2,
)

DEBLUR_MODELS = list_models("deblur")
# The DeblurGAN networks; ``deconv`` has no parameters and is tested in test_blind.py.
DEBLUR_NETWORKS = [name for name in DEBLUR_MODELS if name != "deconv"]


@functools.cache
def eval_mode_model(name: str) -> torch.nn.Module:
    """A random model with eval-mode norms whose residual is large enough to matter."""
    torch.manual_seed(0)
    config = {} if name == "resnet" else {"norm": "batch"}
    model = build_model(name, config)
    final = model.model[-2] if name == "resnet" else model.final
    with torch.no_grad():
        final.weight.mul_(50)
        final.bias.mul_(50)
    return model


def psnr(a: torch.Tensor, b: torch.Tensor, peak: float = 2.0) -> float:
    mse = (a - b).pow(2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(peak**2 / mse)


def test_the_four_backbones_and_blind_deconvolution_are_registered():
    assert set(DEBLUR_MODELS) == {"resnet", "mobilenet", "mobilenet-dsc", "inception", "deconv"}


@pytest.mark.parametrize("name", DEBLUR_NETWORKS)
@pytest.mark.parametrize("size", [(17, 23), (64, 64), (131, 257)])
def test_any_size_in_gives_the_same_size_out(name, size):
    x = torch.rand(1, 3, *size) * 2 - 1
    with torch.inference_mode():
        y = eval_mode_model(name)(x)
    assert y.shape == x.shape
    assert y.min() >= -1 and y.max() <= 1
    assert (y - x).abs().mean() > 0.05  # the network contributes, not just the skip


TILINGS = [(128, 32), (160, 64), (256, 96)]
# The large backbones take 4-10 s a tiling: they are checked with the tightest one only.
SLOW_NETWORKS = {"resnet", "inception"}


@pytest.mark.parametrize(
    "name,tile,overlap",
    [
        (name, tile, overlap)
        for name in DEBLUR_NETWORKS
        for tile, overlap in TILINGS
        if name not in SLOW_NETWORKS or (tile, overlap) == TILINGS[0]
    ],
)
def test_tiled_equals_untiled_for_eval_mode_models(name, tile, overlap):
    torch.manual_seed(1)
    model = eval_mode_model(name)
    x = torch.rand(1, 3, 301, 437) * 2 - 1
    with torch.inference_mode():
        whole = model(x)
        tiled = tiled_forward(model, x, tile, overlap, model.padding.multiple)
    assert psnr(tiled, whole) >= 50


@pytest.mark.parametrize("name", sorted(OFFICIAL_LAYOUTS))
def test_official_layout_loads_strictly_and_maps_every_tensor(name, tmp_path):
    layout = OFFICIAL_LAYOUTS[name]
    if name == "resnet":
        path = save_official_v1(tmp_path / "latest_net_G.pth")
    else:
        path = save_official_v2(tmp_path / f"{name}.h5", layout)
    model, info = load_model(path)
    assert info.architecture == name and info.official and info.statistics == "per_image"
    source = official_state_dict(layout)
    ours = model.state_dict()
    # Every tensor of ours came from the file, under its official name.
    for key, value in ours.items():
        official = key.replace("fpn.backbone.features.", "fpn.features.")
        if name == "inception":
            official = key.replace("fpn.backbone.", "fpn.inception.")
        assert torch.equal(value, source[official]), key
    # Everything not used is a known kind of drop.
    dropped = set(source) - {
        k.replace("fpn.backbone.features.", "fpn.features.").replace(
            "fpn.backbone.", "fpn.inception." if name == "inception" else "fpn.backbone."
        )
        for k in ours
    }
    for key in dropped:
        assert (
            key.startswith("fpn.enc")
            or key.endswith(("running_mean", "running_var", "num_batches_tracked"))
            or any(
                f".{u}." in key
                for u in ("16", "17", "18", "repeat_2", "block8", "conv2d_7b", "last_linear")
            )
        ), key


def test_weights_of_another_architecture_are_a_clear_error(tmp_path):
    path = save_official_v2(tmp_path / "fpn_mobilenet.h5", "fpn_mobilenet.json")
    with pytest.raises(WeightsError, match=r"holds 'mobilenet' weights but 'inception'"):
        load_model(path, architecture="inception")


def test_unknown_layout_is_rejected_naming_the_file(tmp_path):
    # DeblurGAN v1 as coded at the repo's HEAD cannot hold the released weights.
    entries = json.loads((LAYOUTS / "deblurgan_v1_resnet_generator_head.json").read_text())
    state = {name: torch.zeros(shape) for name, shape, _ in entries["entries"]}
    path = tmp_path / "head.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match="unrecognised checkpoint layout") as info:
        load_model(path)
    assert str(path) in str(info.value)


class _Payload:
    def __reduce__(self):
        return (print, ("this ran code",))


def test_a_checkpoint_that_would_unpickle_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"model": _Payload()}, path)
    with pytest.raises(WeightsError, match="would run code"):
        load_model(path)
    assert "this ran code" not in capsys.readouterr().out


def test_random_bytes_are_not_called_a_checkpoint_that_would_run_code(tmp_path):
    path = tmp_path / "noise.pth"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(WeightsError) as info:
        load_model(path)
    assert "would run code" not in str(info.value)
    assert "not a PyTorch checkpoint" in str(info.value) or "not a readable" in str(info.value)


def test_text_file_as_weights_is_rejected(tmp_path):
    path = tmp_path / "weights.pth"
    path.write_text("not a checkpoint")
    with pytest.raises(WeightsError, match=r"weights\.pth"):
        load_model(path)


@pytest.mark.parametrize("name", ["mobilenet-dsc", "resnet"])
def test_safetensors_round_trip_keeps_outputs_and_semantics(name, tmp_path):
    model = eval_mode_model(name)
    config = {} if name == "resnet" else {"norm": "batch"}
    path = tmp_path / "w.safetensors"
    save_weights(model, path, name, config, metadata={"origin": "test"})
    loaded, info = load_model(path)
    assert not info.official and info.tiles_exactly and info.metadata["origin"] == "test"
    x = torch.rand(1, 3, 70, 90) * 2 - 1
    with torch.inference_mode():
        assert torch.equal(loaded(x), model(x))


def test_create_model_loads_weights_and_checks_the_name(tmp_path):
    path = save_official_v1(tmp_path / "latest_net_G.pth")
    model = create_model("resnet", weights=path)
    assert model.statistics == "per_image"
    with pytest.raises(WeightsError):
        create_model("mobilenet", weights=path)


def test_official_v1_runs_deterministically_with_dropout_off(tmp_path):
    model, _ = load_model(save_official_v1(tmp_path / "latest_net_G.pth"))
    x = torch.rand(1, 3, 64, 72) * 2 - 1
    with torch.inference_mode():
        first, second = model(x), model(x)
    assert torch.equal(first, second)
    assert (first - x).abs().mean() > 0.01


def test_per_image_statistics_equal_train_mode_without_keeping_state():
    import copy

    torch.manual_seed(0)
    official_style = build_model("mobilenet")  # running buffers, as in the official files
    ours = copy.deepcopy(official_style)
    set_statistics(ours, "per_image")
    assert not any("running" in k for k in ours.state_dict())
    x = torch.rand(1, 3, 64, 96) * 2 - 1
    with torch.no_grad():
        expected = official_style.train()(x)  # what predict.py does
        first = ours(x)  # ours stays in eval mode
        ours(x * 0.5)  # another image in between leaves no trace
        second = ours(x)
        running = official_style.eval()(x)
    torch.testing.assert_close(first, expected, rtol=0, atol=1e-5)
    assert torch.equal(first, second)
    assert (first - running).abs().max() > 0.01  # running statistics would differ


def test_official_discriminator_layout_loads_strictly():
    entries = json.loads((LAYOUTS / "deblurgan_v1_nlayer_discriminator.json").read_text())
    state = {n: torch.randn(s) for n, s, _ in entries["entries"]}
    critic = NLayerDiscriminator()
    set_statistics(critic, "per_image")
    critic.load_state_dict({k: v for k, v in state.items() if "running" not in k}, strict=True)
    assert critic(torch.rand(1, 3, 64, 64)).shape == (1, 1, 11, 11)


def test_model_specs_describe_memory_and_tasks():
    for name in DEBLUR_MODELS:
        spec = get_spec(name)
        assert spec.task == "deblur" and spec.memory_per_pixel > 0 and spec.description


@pytest.mark.parametrize("name", ["mobilenet", "mobilenet-dsc"])
def test_folding_batch_norms_keeps_outputs_and_removes_every_norm(name):
    model = build_model(name, {"norm": "batch"}).eval()
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):  # statistics a real run would leave
            for tensor, low, high in [
                (module.running_mean, -0.5, 0.5), (module.running_var, 0.2, 2.0),
                (module.weight, 0.5, 1.5), (module.bias, -0.3, 0.3),
            ]:  # fmt: skip
                tensor.data = torch.rand(tensor.shape, generator=generator) * (high - low) + low
    norms = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    x = torch.rand(1, 3, 96, 128, generator=generator) * 2 - 1
    with torch.no_grad():
        expected = model(x)
        assert fold_batch_norms(model) == norms > 30
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
        assert torch.allclose(model(x), expected, atol=1e-5)
        nhwc = model.to(memory_format=torch.channels_last)
        assert torch.allclose(nhwc(x.contiguous(memory_format=torch.channels_last)), expected,
                              atol=1e-5)  # fmt: skip


def test_folding_needs_eval_mode_and_leaves_per_image_norms():
    model = build_model("mobilenet-dsc", {"norm": "batch"})
    with pytest.raises(ValueError, match="eval mode"):
        fold_batch_norms(model.train())
    set_statistics(model, "per_image")
    assert fold_batch_norms(model.eval()) == 0


def test_a_raw_pickle_is_refused_with_one_message_and_no_torch_warning(tmp_path):
    import pickle
    import warnings

    path = tmp_path / "raw.pth"
    path.write_bytes(pickle.dumps({"conv.weight": np.zeros(3)}, protocol=4))  # not torch.save
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning that leaks fails the test
        with pytest.raises(WeightsError, match="not a PyTorch checkpoint"):
            load_model(path)
