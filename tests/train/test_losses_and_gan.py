"""Content losses, the VGG19 perceptual loss from a locally made file, critics and GAN losses."""

from __future__ import annotations

import pytest
import torch

from deblurcli.errors import WeightsError
from deblurcli.train import losses
from deblurcli.train.gan import AdaptivePenalty, Adversary, build_critics, gradient_penalty
from deblurcli.train.losses import PerceptualLoss, VGG19Conv33


def _vgg19_file(path):
    """torchvision's VGG19 layout (features and classifier), random values."""
    channels = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
                (256, 256), (256, 512), (512, 512), (512, 512), (512, 512), (512, 512),
                (512, 512), (512, 512), (512, 512)]  # fmt: skip
    conv_indices = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
    state = {}
    for index, (cin, cout) in zip(conv_indices, channels, strict=True):
        state[f"features.{index}.weight"] = torch.randn(cout, cin, 3, 3) * 0.05
        state[f"features.{index}.bias"] = torch.zeros(cout)
    state["classifier.0.weight"] = torch.zeros(4, 4)
    torch.save(state, path)
    return state


def test_content_losses_are_zero_for_identical_images_and_positive_otherwise():
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    y = (x + 0.1 * torch.randn_like(x)).clamp(-1, 1)
    for name, loss in losses.CONTENT_LOSSES.items():
        assert float(loss(x, x)) == pytest.approx(0.0, abs=1e-5), name
        assert float(loss(x, y)) > 1e-3, name
    assert float(losses.l1(x, y)) == pytest.approx(float((x - y).abs().mean()))


def test_perceptual_loss_loads_torchvision_layout_from_the_torch_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(WeightsError, match=r"vgg19-dcbb9e9d\.pth") as error:
        VGG19Conv33.from_torch_cache()
    assert losses.VGG19_URL in str(error.value) and "--preset fast" in str(error.value)
    cache = losses.torch_hub_checkpoints()
    cache.mkdir(parents=True)
    state = _vgg19_file(cache / losses.VGG19_FILE)
    vgg = VGG19Conv33.from_torch_cache()
    assert torch.equal(vgg.features[14].weight, state["features.14.weight"])  # conv3_3
    assert len(vgg.features) == 15 and not any(p.requires_grad for p in vgg.parameters())
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert vgg(x).shape == (1, 256, 8, 8)
    loss = PerceptualLoss(vgg)
    y = x.clone().requires_grad_(True)
    assert loss(y, x).item() == 0.0
    value = loss(y + 0.1, x)
    value.backward()
    assert value.item() > 0 and y.grad is not None


def test_gradient_penalty_of_a_linear_critic_is_known():
    """f(x) = w·x has gradient w everywhere, so the penalty is (‖w‖ - 1)²."""
    critic = torch.nn.Conv2d(3, 1, 4, bias=False)
    with torch.no_grad():
        critic.weight.fill_(0.05)
    norm = critic.weight.norm().item()
    real, fake = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4)
    penalty, mean_norm = gradient_penalty(critic, real, fake)
    assert penalty.item() == pytest.approx((norm - 1) ** 2, rel=1e-5)
    assert mean_norm == pytest.approx(norm, rel=1e-5)


def test_adaptive_penalty_doubles_above_the_band_halves_below_and_restarts():
    adaptive = AdaptivePenalty(10.0, (0.9, 1.1), window=3)
    assert [adaptive.update(n) for n in (1.0, 1.2, 1.05)] == [10.0, 10.0, 10.0]  # mean 1.083
    assert adaptive.update(1.5) == 20.0  # mean of the last three: 1.183 > 1.1
    assert adaptive.norms == []  # a fresh window for the new λ
    assert [adaptive.update(n) for n in (0.5, 0.6)] == [20.0, 20.0]
    assert adaptive.update(0.7) == 10.0  # mean 0.6 < 0.9
    with pytest.raises(ValueError):
        AdaptivePenalty(10.0, (1.1, 0.9), 3)


def test_the_adaptive_wgan_raises_lambda_for_a_steep_critic_and_checkpoints_it():
    torch.manual_seed(0)
    adversary = Adversary("wgan-gp", "patch", gp_weight=1.0, gp_band=(0.5, 1.5), gp_window=2)
    with torch.no_grad():  # a critic far steeper than 1-Lipschitz
        for parameter in adversary.parameters():
            parameter.mul_(8)
    real, fake = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    for _ in range(2):
        adversary.critic_loss(real, fake)
    assert adversary.gp_weight == 2.0
    restored = Adversary("wgan-gp", "patch", gp_band=(0.5, 1.5), gp_window=2)
    restored.load_state_dict(adversary.state_dict())
    assert restored.gp_weight == 2.0 and restored.adaptive.weight == 2.0


@pytest.mark.parametrize("loss", ["wgan-gp", "ragan-ls", "lsgan", "vanilla"])
@pytest.mark.parametrize("critic", ["patch", "double"])
def test_adversaries_train_their_critics_and_push_the_generator(loss, critic):
    torch.manual_seed(0)
    adversary = Adversary(loss, critic)
    assert len(adversary.critics) == (2 if critic == "double" else 1)
    real = torch.rand(2, 3, 64, 64) * 2 - 1
    fake = (torch.rand(2, 3, 64, 64) * 2 - 1).requires_grad_(True)
    critic_loss = adversary.critic_loss(real, fake)
    critic_loss.backward()
    assert fake.grad is None  # the critic step does not reach the generator
    assert all(p.grad is not None for p in adversary.parameters())
    generator_loss = adversary.generator_loss(real, fake)
    generator_loss.backward()
    assert fake.grad is not None and float(fake.grad.abs().sum()) > 0
    assert torch.isfinite(critic_loss) and torch.isfinite(generator_loss)


@pytest.mark.parametrize("loss", ["wgan-gp", "ragan-ls", "lsgan", "vanilla"])
def test_critics_learn_to_prefer_real_and_the_generator_is_pushed_towards_it(loss):
    # A sign flipped anywhere in either loss breaks one of the two directions.
    torch.manual_seed(0)
    adversary = Adversary(loss, "patch")
    critic = adversary.critics[0]
    real = torch.linspace(-1, 1, 64).expand(2, 3, 64, 64).contiguous()  # smooth ramps
    fake = torch.rand(2, 3, 64, 64) * 2 - 1  # noise

    def margin() -> float:
        with torch.no_grad():
            return float(critic(real).mean() - critic(fake).mean())

    before = margin()
    optimizer = torch.optim.Adam(adversary.parameters(), lr=1e-3)
    for _ in range(5):
        optimizer.zero_grad()
        adversary.critic_loss(real, fake).backward()
        optimizer.step()
    assert margin() > before and margin() > 0

    moved = fake.clone().requires_grad_(True)
    adversary.generator_loss(real, moved).backward()
    with torch.no_grad():
        stepped = fake - 0.05 * moved.grad / moved.grad.abs().max()
        assert float(critic(stepped).mean()) > float(critic(fake).mean())


def test_double_scale_critics_are_3_and_5_layers():
    patch, full = build_critics("double")
    x = torch.rand(1, 3, 256, 256)
    assert patch(x).shape[-1] > full(x).shape[-1]  # the 5-layer critic sees larger regions
    with pytest.raises(ValueError):
        build_critics("triple")
