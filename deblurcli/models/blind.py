"""Blind deconvolution as a model: one camera-shake kernel per photo, then its inverse.

Camera shake blurs a whole photo with (nearly) one kernel. This model
estimates that kernel from the photo itself and inverts it with a sparse
gradient prior, using the pure functions of :mod:`deblurcli.ops.deconv`:

1. :meth:`BlindDeconvolution.global_features` (once per photo): a grey
   linear-light copy at most ``work_size`` px on the longer side, a
   coarse-to-fine L0 kernel estimate on it (:func:`~deblurcli.ops.deconv.estimate_kernel`),
   thinned (raised to ``kernel_sharpening``), rescaled to the photo's own
   resolution, and the photo's noise level. On photos the refiner runs on
   (below), the kernel is then fitted again ``kernel_refits`` times, each time
   against the refined deconvolution (:meth:`BlindDeconvolution.refit_kernel`):
   the L0 latent the search fits against is a cartoon of the photo, the refined
   one is much closer to the sharp photo, and a least-squares kernel fitted
   against a close latent is close to the true one.
2. :meth:`BlindDeconvolution.forward_with_context` (per image or tile):
   hyper-Laplacian deconvolution of each channel in linear light
   (:func:`~deblurcli.ops.deconv.deconvolve`), with a data weight of
   ``data_weight / σ²`` that trusts the photo less the noisier it is;
3. optionally a learned :class:`~deblurcli.models.refiner.DeconvRefiner` that
   removes what an imperfect kernel leaves (ringing, faint double edges, lifted
   noise), on photos no larger than ``work_size``, where the kernel is used at
   the scale it was estimated at, as in the refiner's training. Larger photos
   get the deconvolution alone: there the enlarged kernel leaves other
   artefacts, and the refiner made them worse (on ten 1600 px copies of
   validation photos, -0.19 dB on average, whether it ran on a 1280 px copy
   or on the whole photo).
   Then ``strength`` of the change is kept.

Without a refiner it has no learned parameters: its "weights" file holds the
settings below in its header, chosen on blurred copies of training photos,
never the held-out ones; with one, the file also holds the refiner's tensors.
Deconvolution sees the whole photo through its FFTs, so tiles differ slightly
from a whole-image run near their seams; the restorer runs whole images
whenever they fit in memory.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from deblurcli.models.layers import GlobalContextGenerator, Padding
from deblurcli.models.refiner import DeconvRefiner
from deblurcli.ops import deconv
from deblurcli.ops.color import linear_to_srgb, srgb_to_linear

_LUMA = (0.299, 0.587, 0.114)


def _gray(light: torch.Tensor) -> torch.Tensor:
    """(3, H, W) linear-light RGB -> (H, W) luma."""
    return sum(weight * channel for weight, channel in zip(_LUMA, light, strict=True))


class BlindDeconvolution(GlobalContextGenerator):
    """Kernel estimate per photo, hyper-Laplacian deconvolution: (N, 3, H, W) in [-1, 1] -> same.

    Args:
        kernel_size: side of the kernel window on the working copy, px (odd);
            blur up to about this extent is found.
        work_size: longer side of the copy the kernel is estimated on; larger
            photos are shrunk to it and the kernel is scaled back up.
        iterations: alternations of latent image and kernel fit per pyramid level.
        kernel_weight: Tikhonov weight of the kernel fit (absolute, for a working
            copy of about ``work_size`` px).
        gradient_share: keep at least ``gradient_share·√(pixels·K²)`` of the latent's
            strongest gradients per orientation for the kernel fit (Cho and Lee 2009).
        kernel_sharpening: the estimated kernel is raised to this power (then summed
            to 1) before use; above 1 it thins the estimate, which the L0/Tikhonov
            fit draws thicker and fainter at its ends than the true shake path.
        data_weight: the deconvolution's data weight times σ² (σ: the photo's noise).
        alpha: exponent of the hyper-Laplacian gradient prior.
        strength: share of the deconvolution's change that is kept (in sRGB); below 1
            it tempers the overshoot and ghosts of an imperfect kernel estimate.
        refiner_widths: channels of the refiner at full, half and quarter
            resolution; None for no refiner.
        refiner_blocks: residual blocks of the refiner at those resolutions.
        kernel_refits: times the kernel is fitted again against the refined
            deconvolution (photos no larger than ``work_size``, with a refiner).
        refit_sharpening: the power a re-fitted kernel is raised to, as
            ``kernel_sharpening`` for the search's.
        edge_window: when above 0, the search fits the kernel only on pixels of
            edges wider than the blur: those whose usefulness over this window
            (:func:`~deblurcli.ops.deconv.edge_usefulness`) reaches ``edge_threshold``.
        edge_threshold: see ``edge_window``.
        ensemble_windows: more kernel windows (odd, px on the working copy): the
            search (and its re-fits) runs once per window besides ``kernel_size``
            and the output is the mean of the restorations with each kernel. The
            search turns small changes of its input into other kernels, so their
            errors partly cancel; each window adds the cost of one more estimate
            and restoration. Photos larger than ``work_size`` search
            ``kernel_size`` alone, so their time stays as it was.

    Example:
        >>> model = BlindDeconvolution(kernel_size=9, work_size=64).eval()
        >>> model(torch.zeros(1, 3, 40, 56)).shape
        torch.Size([1, 3, 40, 56])
    """

    local = False  # FFTs see the whole photo

    def __init__(
        self,
        kernel_size: int = 35,
        work_size: int = 1280,
        iterations: int = 10,
        kernel_weight: float = 20.0,
        gradient_share: float = 2.0,
        kernel_sharpening: float = 1.0,
        data_weight: float = 0.01,
        alpha: float = 0.8,
        strength: float = 0.7,
        refiner_widths: Sequence[int] | None = None,
        refiner_blocks: Sequence[int] = (1, 1, 3),
        kernel_refits: int = 0,
        refit_sharpening: float = 1.0,
        edge_window: int = 0,
        edge_threshold: float = 0.5,
        ensemble_windows: Sequence[int] = (),
    ) -> None:
        super().__init__()
        for size in (kernel_size, *ensemble_windows):
            if size < 3 or size % 2 == 0:
                raise ValueError(f"kernel windows must be odd and at least 3, got {size}")
        self.kernel_size = kernel_size
        self.ensemble_windows = tuple(ensemble_windows)
        self.work_size = work_size
        self.iterations = iterations
        self.kernel_weight = kernel_weight
        self.gradient_share = gradient_share
        self.kernel_sharpening = kernel_sharpening
        self.data_weight = data_weight
        self.alpha = alpha
        self.strength = strength
        self.refiner = (
            DeconvRefiner(tuple(refiner_widths), tuple(refiner_blocks)) if refiner_widths else None
        )
        self.kernel_refits = kernel_refits
        self.refit_sharpening = refit_sharpening
        self.edge_window = edge_window
        self.edge_threshold = edge_threshold
        self.padding = Padding(1)

    @property
    def windows(self) -> tuple[int, ...]:
        """The kernel windows searched per photo: ``kernel_size``, then the ensemble's."""
        return (self.kernel_size, *self.ensemble_windows)

    def working_scale(self, height: int, width: int) -> float:
        """Scale of the copy the kernel is searched on: at most 1, ``work_size`` px on the
        longer side of larger photos."""
        return min(1.0, self.work_size / max(height, width))

    def windows_at(self, scale: float) -> tuple[int, ...]:
        """The windows searched on a photo whose working copy has this scale: all of
        them at the working scale, ``kernel_size`` alone on larger photos (as the
        refiner, the ensemble runs only where a photo's time stays small)."""
        return self.windows if scale >= 1 else (self.kernel_size,)

    def global_features(self, image: torch.Tensor) -> torch.Tensor:
        """Whole photos (N, 3, H, W) in [-1, 1] -> (N, 2 + M·K'², 1, 1) float32: the noise
        σ of each photo, the scale of the working copy (1 when the photo is no larger
        than ``work_size``), then its M kernels (one per window of :meth:`windows_at`
        that scale) at the photo's resolution, each centred on the largest one's
        K' × K' canvas and flattened."""
        photos = ((image.float() + 1) / 2).clamp(0, 1)
        scale = self.working_scale(*image.shape[-2:])
        contexts = []
        for photo in photos:
            finals = []
            for window in self.windows_at(scale):
                sigma, _, kernels = self.estimate_kernels(photo, window)
                finals.append(kernels[-1])
            size = max(kernel.shape[-1] for kernel in finals)
            canvas = [F.pad(k, [(size - k.shape[-1]) // 2] * 4).flatten() for k in finals]
            values = torch.tensor([sigma, scale], device=photo.device)
            contexts.append(torch.cat([values, *canvas]))
        return torch.stack(contexts)[:, :, None, None]  # float32 even for bf16 images

    def estimate_kernels(
        self, photo: torch.Tensor, window: int | None = None
    ) -> tuple[float, float, list[torch.Tensor]]:
        """One whole photo, (3, H, W) sRGB in [0, 1] -> its noise σ, the scale of the
        working copy, and its (K', K') kernels at the photo's resolution, in the order
        they are made: the search's, then one per re-fit (on photos the refiner runs
        on). The model deconvolves with the last; training the refiner uses them all.
        ``window`` is the search's kernel window (default ``kernel_size``)."""
        window = self.kernel_size if window is None else window
        scale = self.working_scale(*photo.shape[-2:])
        kernel = deconv.estimate_kernel(
            deconv.resize_image(_gray(srgb_to_linear(photo)), scale),
            window,
            iterations=self.iterations,
            kernel_weight=self.kernel_weight,
            gradient_share=self.gradient_share,
            edge_window=self.edge_window,
            edge_threshold=self.edge_threshold,
        )
        kernel = kernel.pow(self.kernel_sharpening)
        full_size = deconv.odd_size(window / scale)
        kernels = [deconv.resize_kernel(kernel / kernel.sum(), full_size)]
        sigma = deconv.estimate_noise(photo[1])
        if self.refiner is not None and scale >= 1:
            for _ in range(self.kernel_refits):
                kernels.append(self.refit_kernel(photo, kernels[-1], sigma))
        return sigma, scale, kernels

    def forward_with_context(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Deconvolve (N, 3, h, w) images or tiles in [-1, 1] with their photos' kernels
        (the mean of the restorations when there are several)."""
        outputs = []
        for tile, values in zip(x, context.float().flatten(1), strict=True):
            sigma, scale = float(values[0]), float(values[1])
            windows = self.windows_at(scale)
            size = round(((values.numel() - 2) / len(windows)) ** 0.5)
            pixels = ((tile.float().contiguous() + 1) / 2).clamp(0, 1)
            restorations = []
            canvases = values[2:].reshape(len(windows), size, size)
            for window, canvas in zip(windows, canvases, strict=True):
                trim = (size - deconv.odd_size(window / scale)) // 2
                kernel = canvas[trim : size - trim, trim : size - trim]  # its own size again
                sharp = self.deconvolve(pixels, kernel, sigma)
                if self.refiner is not None and scale >= 1:
                    sharp = self.refine(sharp, pixels)
                restorations.append(sharp)
            sharp = torch.stack(restorations).mean(dim=0)
            outputs.append((pixels + self.strength * (sharp - pixels)) * 2 - 1)
        return torch.stack(outputs).to(x.dtype)

    def deconvolve(self, pixels: torch.Tensor, kernel: torch.Tensor, sigma: float) -> torch.Tensor:
        """Hyper-Laplacian deconvolution in linear light: (3, h, w) sRGB in [0, 1] and a
        (K, K) kernel -> (3, h, w) sRGB in [0, 1]; ``sigma`` is the photo's noise level."""
        height, width = pixels.shape[-2:]
        size = kernel.shape[-1]
        padded = deconv.pad_smooth_periodic(srgb_to_linear(pixels), size)
        restored = deconv.deconvolve(
            padded, kernel, self.data_weight / max(sigma, 1e-3) ** 2, alpha=self.alpha
        )[:, size : size + height, size : size + width]
        return linear_to_srgb(restored.clamp(0, 1))

    def refit_kernel(self, photo: torch.Tensor, kernel: torch.Tensor, sigma: float) -> torch.Tensor:
        """The kernel fitted again against the refined deconvolution of the whole photo:
        (3, H, W) sRGB in [0, 1] and a (K, K) kernel -> the new (K, K) kernel, summing to 1.

        The same least-squares fit as the search's last step
        (:func:`~deblurcli.ops.deconv.fit_kernel`, the strongest gradients only),
        against a latent photo far closer to the sharp one than the search's L0 cartoon.
        """
        size = kernel.shape[-1]
        latent = _gray(srgb_to_linear(self.refine(self.deconvolve(photo, kernel, sigma), photo)))
        raw = deconv.fit_kernel(
            deconv.pad_smooth_periodic(latent, size),
            deconv.pad_smooth_periodic(_gray(srgb_to_linear(photo)), size),
            size,
            self.kernel_weight * latent.numel() / 1e6,
            self.gradient_share,
        )
        refitted = deconv.clean_kernel(raw).pow(self.refit_sharpening)
        return refitted / refitted.sum()

    def refine(self, sharp: torch.Tensor, blurred: torch.Tensor) -> torch.Tensor:
        """The refiner's correction of a deconvolution: (3, h, w) sRGB in [0, 1] -> same."""
        assert self.refiner is not None
        height, width = sharp.shape[-2:]
        multiple = self.refiner.multiple
        pair = torch.cat([sharp, blurred])[None] * 2 - 1  # (1, 6, h, w) in [-1, 1]
        pair = F.pad(pair, (0, -width % multiple, 0, -height % multiple), "replicate")
        change = self.refiner(pair[:, :3], pair[:, 3:]) - pair[:, :3]
        return (sharp + change[0, :, :height, :width] / 2).clamp(0, 1)
