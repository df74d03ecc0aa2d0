"""Finding weights by path or name.

The cache, manifest and downloads arrive with the weights issue; today a
``--weights`` value is a file path, and names are reported as unknown with
what to do instead.
"""

from __future__ import annotations

from pathlib import Path

from deblurcli.errors import WeightsError

HOW_TO_GET_WEIGHTS = (
    "pass --weights FILE with an official DeblurGAN-v2 checkpoint (fpn_mobilenet.h5 or "
    "fpn_inception.h5 from github.com/VITA-Group/DeblurGANv2), a DeblurGAN v1 latest_net_G.pth, "
    "or a .safetensors file made by deblurcli; see docs/weights.md"
)


def resolve_weights(value: str) -> Path:
    """The weight file that a ``--weights`` value names.

    Raises:
        WeightsError: no such file and no known name.
    """
    path = Path(value).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise WeightsError("is a folder; --weights takes a weight file", path)
    raise WeightsError(f"no weights file or known weights name {value!r}: {HOW_TO_GET_WEIGHTS}")


def no_default_weights(architecture: str) -> WeightsError:
    """The error for a model that ships no trained weights yet."""
    return WeightsError(
        f"no trained weights ship for {architecture!r} yet, and random weights would only "
        f"damage your photos: {HOW_TO_GET_WEIGHTS}"
    )
