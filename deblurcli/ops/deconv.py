"""Blind deconvolution of camera shake: estimate one kernel per photo, then invert it.

Pure functions on tensors, in three parts:

* :func:`estimate_kernel`: coarse-to-fine blind kernel estimation on a grey
  image. At each scale it alternates an intermediate latent image with an
  L0 gradient prior (Xu, Zheng and Jia, CVPR 2013; Pan et al., TPAMI 2017),
  which keeps only strong edges, and a least-squares kernel fit in the
  gradient domain, cleaned (non-negative, small values and isolated
  specks removed, centred, summing to 1).
* :func:`deconvolve`: non-blind deconvolution with a hyper-Laplacian gradient
  prior (Krishnan and Fergus, NIPS 2009) by half-quadratic splitting; each
  step is a closed-form FFT solve and a per-pixel shrinkage.
* :func:`estimate_noise`: the sensor noise of an image from its finest
  wavelet band (Donoho's median rule), which sets the prior's weight.

FFTs treat images as periodic, so every solver works on images extended by
:func:`pad_smooth_periodic`: mirrored past the edges, then faded to the
image mean, so that opposite borders meet without a jump.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_SQRT_HALF = math.sqrt(0.5)


def fft_size(size: int) -> int:
    """The smallest n >= ``size`` whose only prime factors are 2, 3 and 5 (fast FFT sizes)."""
    n = size
    while True:
        rest = n
        for prime in (2, 3, 5):
            while rest % prime == 0:
                rest //= prime
        if rest == 1:
            return n
        n += 1


def pad_smooth_periodic(image: torch.Tensor, margin: int) -> torch.Tensor:
    """Extend (..., H, W) by at least ``margin`` on every side: a mirror fading to the mean.

    The bottom and right get a few more pixels, so that each side is a fast
    FFT size (:func:`fft_size`); the image sits at ``[margin:margin + H,
    margin:margin + W]``. The result wraps around without a jump, so FFT-based
    solvers do not ring at the photo's borders.
    """
    if margin <= 0:
        return image
    shape = image.shape
    height, width = shape[-2:]
    extra_y = fft_size(height + 2 * margin) - height - 2 * margin
    extra_x = fft_size(width + 2 * margin) - width - 2 * margin
    flat = image.reshape(-1, 1, height, width)
    pads = (margin, margin + extra_x, margin, margin + extra_y)
    mode = "reflect" if max(pads) < min(height, width) else "replicate"
    padded = F.pad(flat, pads, mode=mode)
    mean = flat.mean(dim=(-2, -1), keepdim=True)
    fade_y = _fade(height, margin, margin + extra_y, image)
    fade_x = _fade(width, margin, margin + extra_x, image)
    faded = mean + (padded - mean) * (fade_y[:, None] * fade_x[None, :])
    return faded.reshape(*shape[:-2], *padded.shape[-2:])


def _fade(size: int, before: int, after: int, like: torch.Tensor) -> torch.Tensor:
    """1 over ``size`` samples, with raised-cosine ramps from 0 over ``before`` samples
    ahead and down to 0 over ``after`` samples behind: (before + size + after,)."""

    def ramp(length: int) -> torch.Tensor:
        return (
            0.5
            - 0.5
            * torch.cos(
                torch.linspace(0, math.pi, length + 1, dtype=like.dtype, device=like.device)
            )[:length]
        )

    middle = torch.ones(size, dtype=like.dtype, device=like.device)
    return torch.cat([ramp(before), middle, ramp(after).flip(0)])


def kernel_transfer(kernel: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """The real-FFT transfer function of convolving with a centred (K, K) kernel
    on periodic (H, W) images: (H, W // 2 + 1) complex."""
    size = kernel.shape[-1]
    padded = kernel.new_zeros(shape)
    padded[:size, :size] = kernel
    padded = torch.roll(padded, (-(size // 2), -(size // 2)), dims=(0, 1))
    return torch.fft.rfft2(padded)


def _gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Periodic forward differences along width and height: two (..., H, W)."""
    return torch.roll(x, -1, dims=-1).sub_(x), torch.roll(x, -1, dims=-2).sub_(x)


def _gradient_transfers(shape: tuple[int, int], dtype: torch.dtype, device) -> torch.Tensor:
    """|D_x|^2 + |D_y|^2 of the forward differences, (H, W // 2 + 1) real."""
    height, width = shape
    fy = torch.fft.fftfreq(height, device=device, dtype=dtype)[:, None]
    fx = torch.fft.rfftfreq(width, device=device, dtype=dtype)[None, :]
    return (2 - 2 * torch.cos(2 * math.pi * fx)) + (2 - 2 * torch.cos(2 * math.pi * fy))


def _divergence_spectrum(gx: torch.Tensor, gy: torch.Tensor) -> torch.Tensor:
    """rfft2 of D_x^T gx + D_y^T gy (the adjoint of :func:`_gradients`)."""
    adjoint = torch.roll(gx, 1, dims=-1).sub_(gx).add_(torch.roll(gy, 1, dims=-2)).sub_(gy)
    return torch.fft.rfft2(adjoint)


def l0_latent(
    blurred: torch.Tensor,
    kernel: torch.Tensor,
    weight: float,
    beta_max: float = 1e5,
    beta_rate: float = 2.0,
) -> torch.Tensor:
    """Latent image with an L0 gradient prior: min ||k * x - y||² + weight·||∇x||₀.

    Half-quadratic splitting (Xu et al. 2011): auxiliary gradients are hard
    thresholded, then x is solved in closed form, with β rising from
    2·weight to ``beta_max``. The result keeps strong edges and flattens
    texture, which is what kernel estimation needs.

    Args:
        blurred: (..., H, W), already periodic (see :func:`pad_smooth_periodic`).
        kernel: (K, K), summing to 1.
        weight: the L0 weight (about 4e-3 for images in [0, 1]).

    Returns:
        (..., H, W).
    """
    shape = blurred.shape[-2:]
    k_hat = kernel_transfer(kernel, shape)
    numerator = k_hat.conj() * torch.fft.rfft2(blurred)
    denominator_data = k_hat.abs().square()
    gradient_power = _gradient_transfers(shape, blurred.dtype, blurred.device)
    latent = blurred
    beta = 2 * weight
    while beta < beta_max:
        gx, gy = _gradients(latent)
        keep = (gx.square() + gy.square()) > weight / beta
        gx, gy = gx * keep, gy * keep
        spectrum = (numerator + beta * _divergence_spectrum(gx, gy)) / (
            denominator_data + beta * gradient_power
        )
        latent = torch.fft.irfft2(spectrum, s=shape)
        beta *= beta_rate
    return latent


def edge_usefulness(image: torch.Tensor, window: int, floor: float = 2e-3) -> torch.Tensor:
    """How much each pixel of a (H, W) blurred image belongs to an edge wider than
    its blur: (H, W) in [0, 1] (Xu and Jia, ECCV 2010).

    ``r = |Σ ∇y| / (Σ |∇y| + floor)`` over a ``window``-px square. Along a wide
    step every gradient points the same way and r is near 1; across a thin line
    or fine texture (a cable, a railing, grass) gradients of opposite signs
    cancel and r is near 0. Such structures mislead a kernel fit: parallel
    lines a few px apart can pass for one line smeared across them.
    """
    gx, gy = _gradients(image)
    stacked = torch.stack([gx, gy, torch.sqrt(gx.square() + gy.square())])[:, None]
    padded = F.pad(stacked, (window // 2,) * 4, mode="circular")
    sums = F.avg_pool2d(padded, window, stride=1)[:, 0] * (window * window)
    return torch.sqrt(sums[0].square() + sums[1].square()) / (sums[2] + floor)


def select_gradients(
    gx: torch.Tensor,
    gy: torch.Tensor,
    size: int,
    share: float,
    usable: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep only the strongest gradients of (H, W) ``gx``, ``gy``; zero the rest.

    The threshold keeps at least ``share·√(H·W·K²)`` pixels in each of four
    orientation bins (Cho and Lee, SIGGRAPH Asia 2009), so that every edge
    direction constrains the kernel while weak, noisy gradients do not. When
    given, only pixels where the (H, W) boolean ``usable`` is set compete.
    """
    magnitude = torch.sqrt(gx.square() + gy.square())
    if usable is None:
        usable = torch.ones_like(magnitude, dtype=torch.bool)
    wanted = int(share * math.sqrt(magnitude.numel()) * size)
    orientation = ((torch.atan2(gy, gx) % math.pi) / (math.pi / 4)).long().clamp(max=3)
    threshold = math.inf
    for direction in range(4):
        values = magnitude[(orientation == direction) & usable]
        if values.numel():
            count = min(wanted, values.numel())
            threshold = min(threshold, float(values.topk(count).values[-1]))
    keep = (magnitude >= threshold) & usable
    return gx * keep, gy * keep


def fit_kernel(
    latent: torch.Tensor,
    blurred: torch.Tensor,
    size: int,
    weight: float,
    gradient_share: float | None = None,
    usable: torch.Tensor | None = None,
) -> torch.Tensor:
    """Least-squares kernel in the gradient domain: min Σ||∇x * k - ∇y||² + weight·||k||².

    Args:
        latent, blurred: (H, W), periodic.
        size: K, odd.
        weight: Tikhonov weight on the kernel (absolute: the gradient spectra are
            unnormalised FFTs, so a fixed weight suits a fixed image size).
        gradient_share: when given, only the latent's strongest gradients take
            part (see :func:`select_gradients`).
        usable: (H, W) boolean, when given: the only pixels whose gradients may
            take part (before the selection, with ``gradient_share``).

    Returns:
        (K, K) raw kernel (not yet cleaned).
    """
    shape = latent.shape[-2:]
    latent_gradients = _gradients(latent)
    if gradient_share is not None:
        latent_gradients = select_gradients(*latent_gradients, size, gradient_share, usable)
    elif usable is not None:
        latent_gradients = tuple(gradient * usable for gradient in latent_gradients)
    numerator = torch.zeros((), dtype=torch.complex64, device=latent.device)
    denominator = torch.zeros((), dtype=latent.dtype, device=latent.device)
    for x_grad, y_grad in zip(latent_gradients, _gradients(blurred), strict=True):
        x_hat = torch.fft.rfft2(x_grad)
        numerator = numerator + x_hat.conj() * torch.fft.rfft2(y_grad)
        denominator = denominator + x_hat.abs().square()
    full = torch.fft.irfft2(numerator / (denominator + weight), s=shape)
    full = torch.roll(full, (size // 2, size // 2), dims=(0, 1))
    return full[:size, :size]


def clean_kernel(kernel: torch.Tensor, relative_floor: float = 0.05) -> torch.Tensor:
    """Non-negative, small values and specks dropped, centred, summing to 1: (K, K).

    Values under ``relative_floor`` of the peak are zeroed; of what is left,
    the 8-connected regions holding under a tenth of the kernel's mass go
    (the largest region always stays), which removes the specks noise leaves.
    """
    k = kernel.clamp(min=0)
    peak = k.max()
    if peak <= 0:
        return delta_kernel(kernel.shape[-1], kernel.dtype, kernel.device)
    k = torch.where(k >= relative_floor * peak, k, torch.zeros_like(k))
    k = _drop_small_regions(k / k.sum())
    k = centre_kernel(k)
    return k / k.sum()


def _drop_small_regions(kernel: torch.Tensor) -> torch.Tensor:
    """Zero the 8-connected regions of ``kernel > 0`` (summing to 1) that hold under
    a tenth of its mass, keeping the heaviest region (labels grown by repeated
    3×3 max-pooling)."""
    support = kernel > 0
    size = kernel.shape[-1]
    labels = torch.arange(1, size * size + 1, dtype=torch.float32, device=kernel.device)
    labels = labels.reshape(size, size) * support
    for _ in range(size * size):
        grown = F.max_pool2d(labels[None, None], 3, 1, 1)[0, 0] * support
        if torch.equal(grown, labels):
            break
        labels = grown
    masses = torch.zeros(size * size + 1, dtype=kernel.dtype, device=kernel.device)
    masses.index_add_(0, labels.long().flatten(), kernel.flatten())
    masses[0] = 0
    keep = (masses >= 0.1) | (masses == masses.max())
    return kernel * keep[labels.long()]


def centre_kernel(kernel: torch.Tensor) -> torch.Tensor:
    """Shift a (K, K) kernel by whole pixels so its centroid sits on the centre pixel."""
    size = kernel.shape[-1]
    axis = torch.arange(size, dtype=kernel.dtype, device=kernel.device)
    total = kernel.sum()
    cy = float((kernel.sum(1) * axis).sum() / total)
    cx = float((kernel.sum(0) * axis).sum() / total)
    dy, dx = round(size // 2 - cy), round(size // 2 - cx)
    if dy == 0 and dx == 0:
        return kernel
    shifted = torch.roll(kernel, (dy, dx), dims=(0, 1))
    # What rolled across the border is not part of the kernel.
    if dy > 0:
        shifted[:dy] = 0
    elif dy < 0:
        shifted[dy:] = 0
    if dx > 0:
        shifted[:, :dx] = 0
    elif dx < 0:
        shifted[:, dx:] = 0
    return shifted


def delta_kernel(size: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """The identity kernel: (size, size), 1 at the centre."""
    kernel = torch.zeros(size, size, dtype=dtype, device=device)
    kernel[size // 2, size // 2] = 1
    return kernel


def resize_kernel(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """Rescale a (K, K) kernel to (size, size), centre kept, summing to 1."""
    if kernel.shape[-1] == size:
        return kernel
    resized = F.interpolate(
        kernel[None, None], size=(size, size), mode="bilinear", align_corners=True
    )
    resized = resized[0, 0].clamp(min=0)
    total = resized.sum()
    return resized / total if total > 0 else delta_kernel(size, kernel.dtype, kernel.device)


def resize_image(image: torch.Tensor, scale: float) -> torch.Tensor:
    """(H, W) shrunk by ``scale`` <= 1 with antialiasing (unchanged for ``scale`` >= 1)."""
    if scale >= 1:
        return image
    height, width = image.shape[-2:]
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    return F.interpolate(image[None, None], size=size, mode="bilinear", antialias=True)[0, 0]


def odd_size(value: float) -> int:
    """The odd integer nearest to ``value`` (rounding up from even), at least 3."""
    n = max(3, round(value))
    return n if n % 2 else n + 1


def estimate_kernel(
    gray: torch.Tensor,
    size: int,
    *,
    iterations: int = 10,
    l0_weight: float = 4e-3,
    kernel_weight: float = 20.0,
    gradient_share: float | None = 2.0,
    smallest: int = 5,
    edge_window: int = 0,
    edge_threshold: float = 0.5,
) -> torch.Tensor:
    """Blind estimate of the blur kernel of a grey image, coarse to fine.

    The image and kernel shrink by √½ per level, until the kernel is
    ``smallest`` px; the search starts there from a delta. At each level it
    alternates :func:`l0_latent` and :func:`fit_kernel` ``iterations`` times,
    then the kernel is enlarged for the next level. The L0 weight decays by
    1/1.1 per iteration across all levels (to a floor of 1e-4), so coarse
    levels find the strongest edges and fine levels the detail.

    Args:
        gray: (H, W) in [0, 1] (linear light: where the blur happened).
        size: kernel side K at full scale, odd; larger than the blur.
        iterations: alternations per level.
        l0_weight: the latent image's L0 weight at the coarsest level.
        kernel_weight: Tikhonov weight of the kernel fit per megapixel of ``gray``
            (:func:`fit_kernel`'s weight is absolute, and gradient spectra grow
            with the pixel count); the same weight serves every pyramid level.
        gradient_share: strongest latent gradients kept per orientation for the
            fit (see :func:`select_gradients`); None keeps all.
        smallest: kernel side at the coarsest level.
        edge_window: when above 0, only pixels whose :func:`edge_usefulness` (over
            this window, on each level's blurred image) reaches ``edge_threshold``
            take part in the kernel fit.
        edge_threshold: see ``edge_window``.

    Returns:
        (K, K) float32, non-negative, summing to 1.
    """
    gray = gray.float()
    levels = max(1, math.ceil(math.log(smallest / size) / math.log(_SQRT_HALF)) + 1)
    kernel = delta_kernel(odd_size(size * _SQRT_HALF ** (levels - 1)), device=gray.device)
    weight = l0_weight
    tikhonov = kernel_weight * gray.numel() / 1e6
    for level in range(levels - 1, -1, -1):
        scale = _SQRT_HALF**level
        k_size = size if level == 0 else odd_size(size * scale)
        kernel = resize_kernel(kernel, k_size)
        blurred = pad_smooth_periodic(resize_image(gray, scale), k_size)
        usable = None
        if edge_window > 0:
            usable = edge_usefulness(blurred, edge_window) >= edge_threshold
        for _ in range(iterations):
            latent = l0_latent(blurred, kernel, weight)
            raw = fit_kernel(latent, blurred, k_size, tikhonov, gradient_share, usable)
            kernel = clean_kernel(raw)
            weight = max(weight / 1.1, 1e-4)
    return kernel


def _shrink_table(alpha: float, beta: float, limit: float, steps: int, device) -> torch.Tensor:
    """Shrink factors w/v, where w = argmin_w |w|^alpha + β/2·(w - v)², on a grid of
    ``steps`` values v in [0, limit] (odd symmetric in v, so factors serve ±v).

    Solved by Newton's method on w in (0, v], started at v; the zero solution
    wins where its cost is lower.
    """
    v = torch.linspace(0, limit, steps, dtype=torch.float64, device=device)
    w = v.clone()
    for _ in range(30):
        positive = w.clamp(min=1e-12)
        grad = alpha * positive.pow(alpha - 1) + beta * (positive - v)
        hess = alpha * (alpha - 1) * positive.pow(alpha - 2) + beta
        step = torch.where(hess > 0, grad / hess, grad / beta)
        w = (positive - step).clamp(min=1e-12).minimum(v)
    cost_w = w.pow(alpha) + 0.5 * beta * (w - v).square()
    cost_zero = 0.5 * beta * v.square()
    w = torch.where(cost_w < cost_zero, w, torch.zeros_like(w))
    return (w / v.clamp(min=1e-12)).float()


def _shrink(values: torch.Tensor, factors: torch.Tensor, limit: float) -> torch.Tensor:
    """Shrink any values by a factor table (from :func:`_shrink_table`): the factor of the
    nearest grid point; magnitudes past ``limit`` take the last factor. One gather per
    value: ``torch.take`` with int64 indices, about 3× faster on the CPU than indexing
    the table with int32 ones (0.08 against 0.23 s for 37 M values)."""
    scale = (factors.numel() - 1) / limit
    index = values.abs().mul_(scale).round_().clamp_(max=factors.numel() - 1).long()
    return values * torch.take(factors, index)


def deconvolve(
    blurred: torch.Tensor,
    kernel: torch.Tensor,
    data_weight: float,
    *,
    alpha: float = 0.8,
    beta_start: float = 1.0,
    beta_rate: float = 2 * math.sqrt(2),
    beta_max: float = 256.0,
) -> torch.Tensor:
    """Non-blind deconvolution with a hyper-Laplacian prior (Krishnan and Fergus 2009).

    Minimises ``data_weight/2·||k * x - y||² + Σ|∇x|^alpha`` by half-quadratic
    splitting: per β, the gradients are shrunk towards the prior, then x is
    solved in closed form in the Fourier domain.

    Args:
        blurred: (C, H, W), periodic (see :func:`pad_smooth_periodic`).
        kernel: (K, K), summing to 1.
        data_weight: λ; about 1/σ² scaled, larger trusts the data more.
        alpha: prior exponent (0.5 to 0.8 suits natural images).

    Returns:
        (C, H, W).
    """
    shape = blurred.shape[-2:]
    k_hat = kernel_transfer(kernel.float(), shape)
    numerator = data_weight * k_hat.conj() * torch.fft.rfft2(blurred)
    data_power = data_weight * k_hat.abs().square()
    gradient_power = _gradient_transfers(shape, blurred.dtype, blurred.device)
    latent = blurred
    beta = beta_start
    while beta <= beta_max * (1 + 1e-9):
        limit = 2.0  # gradients of [0, 1] images stay within ±1; overshoots within ±2
        table = _shrink_table(alpha, beta, limit, 8192, blurred.device)
        gx, gy = _gradients(latent)
        spectrum = _divergence_spectrum(_shrink(gx, table, limit), _shrink(gy, table, limit))
        spectrum.mul_(beta).add_(numerator).div_(data_power + beta * gradient_power)
        latent = torch.fft.irfft2(spectrum, s=shape)
        beta *= beta_rate
    return latent


def estimate_noise(gray: torch.Tensor) -> float:
    """Standard deviation of white noise in (H, W), from the median absolute value
    of the diagonal Haar detail band (Donoho 1995): σ ≈ median(|HH|) / 0.6745
    (0 for images under 2×2 px)."""
    h, w = gray.shape[-2:]
    if h < 2 or w < 2:
        return 0.0  # no 2×2 block to read the noise from
    g = gray[..., : h // 2 * 2, : w // 2 * 2]
    a, b = g[..., 0::2, 0::2], g[..., 0::2, 1::2]
    c, d = g[..., 1::2, 0::2], g[..., 1::2, 1::2]
    detail = (a - b - c + d) / 2
    return float(detail.abs().median() / 0.6745)
