"""A run's resume state: every stateful part of the run, its step and the random state.

One ``last.pt`` holds the ``state_dict()`` of each named part (generator, EMA,
optimisers, schedulers, loss scaler, critics, and whatever a trainer adds),
the step, the best validation PSNR and the CPU (and CUDA) random state, so a
resumed run continues as if it had never stopped.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import torch

from deblurcli.errors import WeightsError
from deblurcli.io.output import atomic_path

CHECKPOINT = "last.pt"


class Stateful(Protocol):
    """Anything with ``state_dict()`` and ``load_state_dict()``: modules, optimisers,
    schedulers, gradient scalers."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any], /) -> Any: ...


def save_run_state(
    path: Path, step: int, architecture: str, best_psnr: float, parts: Mapping[str, Stateful]
) -> None:
    """Write the run's state to ``path`` atomically: the previous file stays whole if
    writing fails."""
    state: dict[str, Any] = {"step": step, "architecture": architecture, "best_psnr": best_psnr}
    state.update({name: part.state_dict() for name, part in parts.items()})
    state["rng"] = torch.get_rng_state()
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    with atomic_path(path) as temporary:
        torch.save(state, temporary)


def load_run_state(
    path: Path, device: torch.device, architecture: str, parts: Mapping[str, Stateful]
) -> tuple[int, float]:
    """Restore every part (in ``parts``' order) and the random state from ``path``.

    Returns:
        (step, best validation PSNR) of the saved run.

    Raises:
        WeightsError: the file holds a run of another architecture.
    """
    state = torch.load(path, map_location=device, weights_only=True)
    if state["architecture"] != architecture:
        raise WeightsError(f"is a {state['architecture']!r} checkpoint", path)
    for name, part in parts.items():
        part.load_state_dict(state[name])
    torch.set_rng_state(state["rng"].cpu())
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
    return int(state["step"]), float(state["best_psnr"])
