"""Model registry: ``@register_model`` entry functions, ``create_model``, ``list_models``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from deblurcli.errors import UsageError
from deblurcli.models.layers import PaddedGenerator, Padding

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one architecture.

    Attributes:
        name: registry key, as typed after ``--backbone``.
        build: entry function returning a randomly initialised model; keyword
            arguments are architecture options recorded in our weight files.
        task: ``deblur`` or ``enhance``.
        description: one line for ``--help`` and listings.
        official_filter: maps an official checkpoint's state dict onto ours,
            or None when no official weights exist.
        official_padding: the padding the official inference code applies.
        default_weights: manifest name of the weights used when none are given.
        memory_per_pixel: peak activation memory of an fp32 forward pass per
            input pixel, in bytes (measured on the CPU, see benchmarks/speed.py);
            sizes automatic tiles.
        bf16_safe: its bf16 output was measured within 50 dB of fp32 and 2 grey
            levels on real photographs (``benchmarks/precision.py``), so
            ``--precision auto`` may run it in bf16 or fp16; others stay fp32.
    """

    name: str
    build: Callable[..., PaddedGenerator]
    task: str
    description: str
    official_filter: Callable[[Mapping[str, torch.Tensor]], StateDict] | None = None
    official_padding: Padding | None = None
    default_weights: str | None = None
    memory_per_pixel: float = 1000.0
    bf16_safe: bool = False


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str,
    *,
    task: str,
    description: str,
    official_filter: Callable[[Mapping[str, torch.Tensor]], StateDict] | None = None,
    official_padding: Padding | None = None,
    default_weights: str | None = None,
    memory_per_pixel: float = 1000.0,
    bf16_safe: bool = False,
) -> Callable[[Callable[..., PaddedGenerator]], Callable[..., PaddedGenerator]]:
    """Decorator registering an entry function under ``name``."""

    def decorate(build: Callable[..., PaddedGenerator]) -> Callable[..., PaddedGenerator]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelSpec(
            name,
            build,
            task,
            description,
            official_filter,
            official_padding,
            default_weights,
            memory_per_pixel,
            bf16_safe,
        )
        return build

    return decorate


def list_models(task: str | None = None) -> list[str]:
    """Registered model names, optionally only those for ``task``."""
    return sorted(n for n, spec in _REGISTRY.items() if task is None or spec.task == task)


def get_spec(name: str) -> ModelSpec:
    """The registry entry for ``name``.

    Raises:
        UsageError: no such model.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UsageError(
            f"unknown model {name!r}: choose one of {', '.join(list_models())}"
        ) from None


def build_model(name: str, config: Mapping[str, Any] | None = None) -> PaddedGenerator:
    """A randomly initialised model ``name`` in eval mode, built with ``config`` options.

    Raises:
        UsageError: unknown model, or options its entry function does not take.
    """
    spec = get_spec(name)
    try:
        return spec.build(**dict(config or {})).eval()
    except (TypeError, ValueError) as exc:
        raise UsageError(f"options {dict(config or {})} do not fit model {name!r}: {exc}") from None
