"""deblurcli: restore batches of photographs with DeblurGAN-family networks.

Public API: :func:`create_model`, :func:`list_models`, :class:`Restorer`,
``__version__``. They are imported lazily so that ``deblur --help`` starts
without loading PyTorch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deblurcli._version import __version__

if TYPE_CHECKING:
    from deblurcli.models import list_models
    from deblurcli.models._builder import create_model
    from deblurcli.pipelines.restore import Restorer

__all__ = ["Restorer", "__version__", "create_model", "list_models"]


def __getattr__(name: str) -> Any:
    if name == "create_model":
        from deblurcli.models._builder import create_model

        return create_model
    if name == "list_models":
        from deblurcli.models import list_models

        return list_models
    if name == "Restorer":
        from deblurcli.pipelines.restore import Restorer

        return Restorer
    raise AttributeError(f"module 'deblurcli' has no attribute {name!r}")
