"""NVML sampling beside a measurement: power, clocks, temperature, clock-event reasons, energy.

Why a sampler and not one reading: the timed loop lasts about a second, clocks move within it,
and a power-cap event in the middle must show up in the result (``throttled``). Energy comes
from the driver's cumulative counter (``nvmlDeviceGetTotalEnergyConsumption``, mJ since driver
load, Volta+). That counter is refreshed only every ~20-100 ms, so the window must be long
(timing defaults to >= 1 s of work); the trapezoid integral of the sampled instantaneous power is
kept beside it as a cross-check. ``nvmlDeviceGetPowerUsage`` is a 1 s running average on
Ampere-and-later boards, so instantaneous power is read from the field
``NVML_FI_DEV_POWER_INSTANT`` when the driver offers it.

Everything here needs ``pynvml`` (package ``nvidia-ml-py``) and a driver; without them the
functions raise :class:`NvmlUnavailable` with the cause and the fix.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any

# Clock-event (throttle) reason bits, as in nvml.h (nvmlClocksEventReason*). Kept here so the
# decoder works, and is testable, without pynvml or a GPU.
CLOCK_EVENT_BITS: dict[int, str] = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",  # also "user defined clocks"
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
# Reasons that say the clocks were held down by something other than power or heat: an idle GPU
# between launches, clocks pinned by an administrator, boost kept in step with other GPUs, or the
# display. They do not make a measurement suspect.
BENIGN_REASONS = frozenset(
    {"gpu_idle", "applications_clocks_setting", "sync_boost", "display_clock_setting"}
)
# Reasons that mean the measured speed is lower than the card's sustained best: power cap,
# thermal limits, hardware slowdown (power brake, external signal).
THROTTLE_REASONS = frozenset(
    {
        "sw_power_cap",
        "hw_slowdown",
        "sw_thermal_slowdown",
        "hw_thermal_slowdown",
        "hw_power_brake_slowdown",
    }
)


class NvmlUnavailable(RuntimeError):
    """NVML cannot be used here; the message names the cause and the fix."""


def decode_clock_event_reasons(mask: int) -> list[str]:
    """Names of the bits set in an NVML clock-event mask, lowest bit first.

    Unknown bits (newer drivers add reasons) come back as ``unknown_0x<bit>`` rather than being
    dropped, so a new kind of slowdown is visible in the results.
    """
    names = []
    bit = 1
    while bit <= mask:
        if mask & bit:
            names.append(CLOCK_EVENT_BITS.get(bit, f"unknown_0x{bit:x}"))
        bit <<= 1
    return names


def split_reasons(names: list[str] | set[str]) -> tuple[list[str], list[str]]:
    """(real throttling, benign or unknown) reasons, each sorted.

    Unknown bits go with the benign ones but keep their ``unknown_`` name in the results.
    """
    real = sorted(n for n in set(names) if n in THROTTLE_REASONS)
    other = sorted(n for n in set(names) if n not in THROTTLE_REASONS)
    return real, other


_NVML = None


def _pynvml():
    """Import pynvml and initialise NVML once per process, or say why it cannot be done."""
    global _NVML
    if _NVML is not None:
        return _NVML
    try:
        import pynvml
    except ImportError as err:
        raise NvmlUnavailable(
            "pynvml is not installed: `pip install nvidia-ml-py` (the NVIDIA-maintained binding)"
        ) from err
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as err:
        raise NvmlUnavailable(
            f"NVML could not start ({err}): this machine has no NVIDIA driver "
            "(libnvidia-ml.so) or no GPU; run the GPU stages on a GPU host"
        ) from err
    _NVML = pynvml
    return pynvml


def device_handle(pci_bus_id: str | None = None, index: int = 0):
    """NVML handle for the GPU CUDA is using.

    NVML numbers GPUs in PCI order, CUDA (and CUDA_VISIBLE_DEVICES) may not: pass the PCI bus id
    of the CUDA device (``cupy.cuda.Device().pci_bus_id``) to be sure both name the same card.
    """
    nv = _pynvml()
    if pci_bus_id:
        return nv.nvmlDeviceGetHandleByPciBusId(pci_bus_id)
    return nv.nvmlDeviceGetHandleByIndex(index)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_power_w(handle) -> float:
    """Instantaneous board power in W (field POWER_INSTANT), else NVML's averaged reading."""
    nv = _pynvml()
    field_id = getattr(nv, "NVML_FI_DEV_POWER_INSTANT", None)
    if field_id is not None:
        try:
            val = nv.nvmlDeviceGetFieldValues(handle, [field_id])[0]
            if val.nvmlReturn == 0:
                return val.value.uiVal / 1000.0
        except nv.NVMLError:
            pass
    return nv.nvmlDeviceGetPowerUsage(handle) / 1000.0


def read_energy_mj(handle) -> int:
    """Cumulative energy counter in mJ since the driver loaded (Volta and newer)."""
    return int(_pynvml().nvmlDeviceGetTotalEnergyConsumption(handle))


def read_temperature_c(handle) -> int:
    nv = _pynvml()
    return int(nv.nvmlDeviceGetTemperature(handle, nv.NVML_TEMPERATURE_GPU))


def read_clock_event_mask(handle) -> int:
    """Current clock-event reasons; the older name (...ThrottleReasons) on older bindings."""
    nv = _pynvml()
    fn = getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None) or getattr(
        nv, "nvmlDeviceGetCurrentClocksThrottleReasons"
    )
    return int(fn(handle))


@dataclass
class Sample:
    t_s: float  # time.perf_counter() when read
    power_w: float
    sm_clock_mhz: int
    mem_clock_mhz: int
    temperature_c: int
    event_mask: int


def read_sample(handle) -> Sample:
    nv = _pynvml()
    return Sample(
        t_s=time.perf_counter(),
        power_w=read_power_w(handle),
        sm_clock_mhz=int(nv.nvmlDeviceGetClockInfo(handle, nv.NVML_CLOCK_SM)),
        mem_clock_mhz=int(nv.nvmlDeviceGetClockInfo(handle, nv.NVML_CLOCK_MEM)),
        temperature_c=read_temperature_c(handle),
        event_mask=read_clock_event_mask(handle),
    )


def trapezoid_energy_j(times_s: list[float], powers_w: list[float]) -> float:
    """Integral of sampled power over time (J); 0 with fewer than two samples."""
    return sum(
        0.5 * (powers_w[i] + powers_w[i - 1]) * (times_s[i] - times_s[i - 1])
        for i in range(1, len(times_s))
    )


def summarize_samples(samples: list[Sample]) -> dict:
    """Flat summary of a sampling window (units in the key names)."""
    if not samples:
        return {"nvml_samples": 0}
    mask = 0
    for s in samples:
        mask |= s.event_mask
    names = decode_clock_event_reasons(mask)
    real, other = split_reasons(names)
    sm = [s.sm_clock_mhz for s in samples]
    mem = [s.mem_clock_mhz for s in samples]
    temp = [s.temperature_c for s in samples]
    power = [s.power_w for s in samples]
    frac = lambda pred: sum(1 for s in samples if pred(s)) / len(samples)  # noqa: E731
    return {
        "nvml_samples": len(samples),
        "sample_power_w_mean": statistics.fmean(power),
        "peak_power_w": max(power),
        "energy_j_power_integral": trapezoid_energy_j([s.t_s for s in samples], power),
        "sm_clock_mhz_median": statistics.median(sm),
        "sm_clock_mhz_min": min(sm),
        "sm_clock_mhz_max": max(sm),
        "mem_clock_mhz_median": statistics.median(mem),
        "temperature_c_start": temp[0],
        "temperature_c_max": max(temp),
        "temperature_c_end": temp[-1],
        "clock_event_mask": mask,
        "clock_event_reasons": ";".join(names),
        "throttle_reasons": ";".join(real),
        "benign_clock_reasons": ";".join(other),
        "throttled": bool(real),
        "throttled_sample_fraction": frac(
            lambda s: bool(set(decode_clock_event_reasons(s.event_mask)) & THROTTLE_REASONS)
        ),
    }


@dataclass
class NvmlSampler:
    """Context manager: samples NVML every ``period_s`` on a background thread.

    On exit ``result`` holds the summary plus the energy counter difference over the window
    (``energy_mj``, ``window_s``, ``avg_power_w`` = counter energy / window). The background
    thread only reads NVML, which is thread-safe, and holds the GIL briefly per sample, so the
    timed CUDA launches on the main thread are not held back measurably at a 10 ms period.
    """

    handle: Any
    period_s: float = 0.010
    align_energy_tick: bool = True  # start the window just after the energy counter moves
    samples: list[Sample] = field(default_factory=list)
    result: dict = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _t0_s: float = 0.0
    _e0_mj: int = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(read_sample(self.handle))
            self._stop.wait(self.period_s)

    def __enter__(self) -> "NvmlSampler":
        if self.align_energy_tick:
            wait_for_energy_tick(self.handle)
        self._e0_mj = read_energy_mj(self.handle)
        self._t0_s = time.perf_counter()
        self.samples.append(read_sample(self.handle))
        self._thread = threading.Thread(target=self._run, name="nvml-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        e1_mj = read_energy_mj(self.handle)
        t1_s = time.perf_counter()
        self.samples.append(read_sample(self.handle))
        window_s = t1_s - self._t0_s
        energy_mj = e1_mj - self._e0_mj
        self.result = {
            **summarize_samples(self.samples),
            "energy_mj": energy_mj,
            "window_s": window_s,
            "avg_power_w": energy_mj / 1000.0 / window_s if window_s > 0 else float("nan"),
        }


def wait_for_energy_tick(handle, timeout_s: float = 0.25, poll_s: float = 0.001) -> float:
    """Wait until the energy counter changes (at most ``timeout_s``); return the seconds waited.

    Starting the window right after a refresh removes up to one refresh period (~20-100 ms) of
    quantisation at the start of the window.
    """
    t0 = time.perf_counter()
    e0 = read_energy_mj(handle)
    while time.perf_counter() - t0 < timeout_s:
        if read_energy_mj(handle) != e0:
            break
        time.sleep(poll_s)
    return time.perf_counter() - t0


def wait_for_cool(
    handle, max_temperature_c: float, timeout_s: float = 120.0, poll_s: float = 1.0
) -> dict:
    """Wait until the GPU is at or below ``max_temperature_c`` so runs start from a like state.

    Never raises on timeout: a hot machine is recorded (``cooled: false``) rather than left
    unmeasured, and the report can show it.
    """
    t0 = time.perf_counter()
    start_c = read_temperature_c(handle)
    now_c = start_c
    while now_c > max_temperature_c and time.perf_counter() - t0 < timeout_s:
        time.sleep(poll_s)
        now_c = read_temperature_c(handle)
    return {
        "cool_target_c": max_temperature_c,
        "cool_start_c": start_c,
        "cool_end_c": now_c,
        "cool_waited_s": time.perf_counter() - t0,
        "cooled": now_c <= max_temperature_c,
    }


def device_info(handle) -> dict:
    """Static facts about the GPU NVML sees (name, UUID, driver, max clocks, bus width)."""
    nv = _pynvml()

    def attempt(fn, *args):
        try:
            return fn(*args)
        except (nv.NVMLError, AttributeError):
            return "unavailable"

    return {
        "gpu_name": _text(attempt(nv.nvmlDeviceGetName, handle)),
        "gpu_uuid": _text(attempt(nv.nvmlDeviceGetUUID, handle)),
        "driver_version": _text(attempt(nv.nvmlSystemGetDriverVersion)),
        "nvml_cuda_driver_version": attempt(nv.nvmlSystemGetCudaDriverVersion),
        "sm_clock_max_mhz": attempt(nv.nvmlDeviceGetMaxClockInfo, handle, nv.NVML_CLOCK_SM),
        "mem_clock_max_mhz": attempt(nv.nvmlDeviceGetMaxClockInfo, handle, nv.NVML_CLOCK_MEM),
        "sm_clock_mhz": attempt(nv.nvmlDeviceGetClockInfo, handle, nv.NVML_CLOCK_SM),
        "mem_clock_mhz": attempt(nv.nvmlDeviceGetClockInfo, handle, nv.NVML_CLOCK_MEM),
        "memory_bus_width_bits": attempt(nv.nvmlDeviceGetMemoryBusWidth, handle),
        "power_limit_w": (
            lambda v: v / 1000.0 if isinstance(v, int) else v
        )(attempt(nv.nvmlDeviceGetEnforcedPowerLimit, handle)),
        "temperature_c": attempt(read_temperature_c, handle),
    }
