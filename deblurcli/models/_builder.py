"""Reading weight files safely, detecting their architecture, building loaded models."""

from __future__ import annotations

import json
import pickle
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from deblurcli.errors import WeightsError
from deblurcli.io.output import atomic_path
from deblurcli.models._registry import ModelSpec, StateDict, build_model, get_spec, list_models
from deblurcli.models.blur_detector import DETECTOR_FORMAT
from deblurcli.models.layers import PaddedGenerator, Statistics, set_statistics

FORMAT_TAG = "deblurcli"
_WRAPPER_KEYS = ("model", "state_dict")


@dataclass(frozen=True)
class WeightsInfo:
    """Where a model's weights came from and how they must be run.

    Attributes:
        architecture: registry name.
        path: the weight file.
        official: an official DeblurGAN checkpoint (run with its own semantics).
        statistics: norm statistics policy (see ``layers.set_statistics``).
        metadata: free-form strings stored in our own files.
    """

    architecture: str
    path: Path
    official: bool
    statistics: Statistics
    metadata: Mapping[str, str]

    @property
    def tiles_exactly(self) -> bool:
        """True when tiles give the same result as the whole image (eval-mode norms)."""
        return self.statistics == "running"


def read_state_dict(path: Path) -> tuple[StateDict, dict[str, str]]:
    """Load tensors from ``.safetensors`` or a weights-only torch checkpoint.

    Unwraps ``{'model': ...}`` / ``{'state_dict': ...}`` and strips a
    ``module.`` (DataParallel) prefix.

    Returns:
        The state dict and the file's metadata (empty for torch checkpoints).

    Raises:
        WeightsError: unreadable, not a checkpoint, or it would unpickle code.
    """
    if not path.is_file():
        raise WeightsError("weights file not found", path)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                metadata = dict(f.metadata() or {})
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsError(f"not a valid safetensors file ({exc})", path) from None
        return tensors, metadata
    try:
        with warnings.catch_warnings():
            # Raw pickles (not torch.save files) make torch warn about their protocol
            # before it refuses them; the refusal below is the one message to show.
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # Only a pickled class or function (GLOBAL) means the file would run code;
        # other refusals ("Unsupported operand") are bytes that are no pickle at all.
        if "Unsupported global" in str(exc):
            raise WeightsError(
                "refused: loading this checkpoint would run code from the file; "
                "only plain tensors are loaded (ask its author for a safetensors file)",
                path,
            ) from None
        raise WeightsError("not a PyTorch checkpoint or safetensors file", path) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise WeightsError(
            f"not a readable checkpoint ({str(exc).splitlines()[0]})", path
        ) from None
    for key in _WRAPPER_KEYS:
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError("the checkpoint holds no state dict of tensors", path)
    state = {str(k): v for k, v in obj.items()}
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state, {}


def _expected_shapes(spec: ModelSpec, statistics: Statistics, config: Mapping[str, Any]) -> dict:
    with torch.device("meta"):
        model = spec.build(**dict(config))
    set_statistics(model, statistics)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _matches(state: StateDict, expected: Mapping[str, tuple]) -> bool:
    return state.keys() == expected.keys() and all(
        tuple(v.shape) == expected[k] for k, v in state.items()
    )


def detect_official(state: StateDict) -> tuple[str, StateDict] | None:
    """Find the architecture whose official layout ``state`` has exactly.

    Returns:
        The registry name and the state dict mapped onto our layout, or None.
    """
    for name in list_models():
        spec = get_spec(name)
        if spec.official_filter is None:
            continue
        mapped = spec.official_filter(state)
        if _matches(mapped, _expected_shapes(spec, "per_image", {})):
            return name, mapped
    return None


def load_model(path: Path, architecture: str | None = None) -> tuple[PaddedGenerator, WeightsInfo]:
    """Build the model a weight file holds, load it strictly, and set its semantics.

    Args:
        path: our ``.safetensors`` file or an official checkpoint.
        architecture: the architecture the user asked for; a file holding
            another one is an error. None accepts what the file holds.

    Returns:
        The model in eval mode (on the CPU, fp32) and what was loaded.

    Raises:
        WeightsError: unreadable or unsafe file, unknown layout, or another architecture.
    """
    state, metadata = read_state_dict(path)
    if metadata.get("format") == DETECTOR_FORMAT:
        raise WeightsError(
            "this is the blur detector's file (deblur triage, --only-blurry), "
            "not a restoration model: pick one from deblur weights list",
            path,
        )
    if metadata.get("format") == FORMAT_TAG:
        found = metadata.get("architecture", "")
        if found not in list_models():
            raise WeightsError(f"made for an unknown model {found!r}", path)
        config = json.loads(metadata.get("config", "{}"))
        statistics: Statistics = metadata.get("statistics", "running")  # type: ignore[assignment]
        official = metadata.get("semantics") == "official"  # an imported official checkpoint
    else:
        detected = detect_official(state)
        if detected is None:
            raise WeightsError(
                "unrecognised checkpoint layout: not an official DeblurGAN/DeblurGAN-v2 "
                f"generator nor a deblurcli file (models: {', '.join(list_models())})",
                path,
            )
        found, state = detected
        config, statistics, official = {}, "per_image", True
    if architecture is not None and architecture != found:
        raise WeightsError(
            f"holds {found!r} weights but {architecture!r} was asked for: "
            f"use --backbone {found} or other weights",
            path,
        )
    spec = get_spec(found)
    model = build_model(found, config)
    set_statistics(model, statistics)
    if official:
        assert spec.official_padding is not None
        model.padding = spec.official_padding
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"does not fit {found!r}: {str(exc).splitlines()[0]}", path) from None
    info = WeightsInfo(found, path, official, statistics, metadata)
    return model, info


def save_weights(
    model: PaddedGenerator,
    path: Path,
    architecture: str,
    config: Mapping[str, Any] | None = None,
    dtype: torch.dtype = torch.float32,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write ``model`` as a deblurcli ``.safetensors`` file, atomically.

    Args:
        model: the trained model (its ``statistics`` policy is recorded).
        path: destination; written to a temporary file beside it, then renamed.
        architecture: registry name.
        config: options of the entry function the model was built with.
        dtype: floating-point storage type (fp16 halves shipped files).
        metadata: extra strings (origin, licence, recipe).
    """
    from safetensors.torch import save_file

    tensors = {
        k: (v.to(dtype) if v.is_floating_point() else v).detach().cpu().contiguous()
        for k, v in model.state_dict().items()
    }
    header = {
        **dict(metadata or {}),
        "format": FORMAT_TAG,
        "architecture": architecture,
        "config": json.dumps(dict(config or {}), sort_keys=True),
        "statistics": model.statistics,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        save_file(tensors, str(temporary), metadata=header)


def create_model(
    name: str,
    weights: str | Path | None = None,
    device: str | torch.device = "cpu",
) -> PaddedGenerator:
    """The one factory: model ``name``, with ``weights`` loaded if given, in eval mode.

    Args:
        name: registry name (see ``list_models()``).
        weights: a weight file; None gives random initialisation (for training).
        device: where to put the model.

    Raises:
        WeightsError: the weights are unreadable or of another architecture.

    Example:
        >>> create_model("mobilenet-dsc").padding.multiple
        32
    """
    if weights is None:
        model = build_model(name)
    else:
        model, _info = load_model(Path(weights), architecture=name)
    return model.to(device)
