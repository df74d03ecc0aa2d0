"""Restoration networks and their registry."""

from deblurcli.models import zoo as _zoo  # noqa: F401  (registers the models)
from deblurcli.models._registry import ModelSpec, build_model, get_spec, list_models

__all__ = ["ModelSpec", "build_model", "get_spec", "list_models"]
