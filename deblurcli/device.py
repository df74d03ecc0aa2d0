"""Device selection (``auto|cpu|cuda[:n]|mps``) and the precision policy."""

from __future__ import annotations

import os

import torch

from deblurcli.errors import DeviceError

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(spec: str = "auto") -> torch.device:
    """Turn a user's device string into an available ``torch.device``.

    Args:
        spec: ``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

    Raises:
        DeviceError: the device does not exist on this machine.
    """
    spec = spec.strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise DeviceError(f"unknown device {spec!r}: use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("CUDA is not available on this machine: use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(
                f"there is no {spec} (this machine has {torch.cuda.device_count()} CUDA devices)"
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError("MPS is not available on this machine: use --device cpu or auto")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"unsupported device {spec!r}: use auto, cpu, cuda, cuda:N or mps")
    return device


def resolve_precision(spec: str, device: torch.device, reduced_ok: bool = True) -> torch.dtype:
    """Choose the compute dtype of inference.

    ``auto`` is reduced precision only where it is fast and the model is known to
    stay close to fp32 (``reduced_ok``, from the registry's ``bf16_safe``): bf16
    on CUDA with bf16 support (else fp16, which has less range), fp16 on MPS,
    bf16 on CPUs with native bf16 (AVX512-BF16 or AMX; emulated bf16 is slower
    than fp32), and fp32 everywhere else.

    Raises:
        DeviceError: the precision name is unknown or unsupported on the device.
    """
    spec = spec.strip().lower()
    if spec not in PRECISIONS:
        raise DeviceError(f"unknown precision {spec!r}: use one of {', '.join(PRECISIONS)}")
    if spec == "auto":
        if not reduced_ok:
            return torch.float32
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "mps":
            return torch.float16
        return torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    if spec == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise DeviceError("this GPU has no bf16 support: use --precision fp16 or fp32")
    return _DTYPES[spec]


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), read from
    ``/proc/cpuinfo``; elsewhere bf16 is emulated and slower than fp32."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def resolve_training_precision(spec: str, device: torch.device) -> torch.dtype:
    """The autocast dtype of a training run (float32: no autocast).

    ``auto`` is bf16 on CUDA with bf16 support (else fp16 with loss scaling),
    bf16 on CPUs with native bf16, and fp32 elsewhere. Weights, optimiser
    state and losses stay fp32 whatever is chosen.

    Raises:
        DeviceError: the precision name is unknown or unsupported on the device.
    """
    spec = spec.strip().lower()
    if spec == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "cpu" and cpu_has_native_bf16():
            return torch.bfloat16
        return torch.float32
    if spec == "fp16" and device.type == "cpu":
        raise DeviceError("fp16 training needs a GPU: use --precision bf16 or fp32 on the CPU")
    return resolve_precision(spec, device)


def free_memory_bytes(device: torch.device) -> int:
    """Memory available for activations on ``device``, in bytes.

    CUDA reports free device memory; the CPU and MPS report the system's
    available memory (``MemAvailable`` on Linux).
    """
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    return _system_available_bytes()


def _system_available_bytes() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 * 1024**3
