"""NVML sampler: throttle-reason decoding and window summaries (CPU), real readings (GPU)."""

import time

import pytest

from pipeline.core import nvml


def _nvml_handle_or_skip():
    try:
        import cupy

        cupy.cuda.runtime.getDeviceCount()
        return nvml.device_handle(pci_bus_id=cupy.cuda.Device().pci_bus_id)
    except Exception as err:  # no cupy, no GPU, no driver
        pytest.skip(f"needs a GPU with CuPy and NVML: {err}")


def test_decode_empty_mask_is_no_reason():
    assert nvml.decode_clock_event_reasons(0) == []


def test_decode_names_each_bit_in_order():
    assert nvml.decode_clock_event_reasons(0x1 | 0x4 | 0x40) == ["gpu_idle", "sw_power_cap", "hw_thermal_slowdown"]


def test_decode_keeps_unknown_bits():
    assert nvml.decode_clock_event_reasons(0x4 | 0x800) == ["sw_power_cap", "unknown_0x800"]


def test_bits_match_pynvml_constants():
    pynvml = pytest.importorskip("pynvml")
    expect = {
        "gpu_idle": "nvmlClocksEventReasonGpuIdle",
        "applications_clocks_setting": "nvmlClocksEventReasonApplicationsClocksSetting",
        "sw_power_cap": "nvmlClocksEventReasonSwPowerCap",
        "hw_slowdown": "nvmlClocksEventReasonHwSlowdown",
        "sync_boost": "nvmlClocksEventReasonSyncBoost",
        "sw_thermal_slowdown": "nvmlClocksEventReasonSwThermalSlowdown",
        "hw_thermal_slowdown": "nvmlClocksEventReasonHwThermalSlowdown",
        "hw_power_brake_slowdown": "nvmlClocksEventReasonHwPowerBrakeSlowdown",
        "display_clock_setting": "nvmlClocksEventReasonDisplayClockSetting",
    }
    for name, const in expect.items():
        if hasattr(pynvml, const):
            assert nvml.CLOCK_EVENT_BITS[getattr(pynvml, const)] == name


def test_split_separates_benign_from_throttling():
    real, other = nvml.split_reasons(["gpu_idle", "sw_power_cap", "applications_clocks_setting", "unknown_0x800"])
    assert real == ["sw_power_cap"]
    assert other == ["applications_clocks_setting", "gpu_idle", "unknown_0x800"]


def _sample(t, power, mask, sm=1980, temp=40):
    return nvml.Sample(t_s=t, power_w=power, sm_clock_mhz=sm, mem_clock_mhz=2619, temperature_c=temp, event_mask=mask)


def test_summary_idle_only_is_not_throttled():
    s = nvml.summarize_samples([_sample(0.0, 100, 0x1), _sample(0.01, 300, 0x0)])
    assert s["throttled"] is False
    assert s["benign_clock_reasons"] == "gpu_idle"
    assert s["peak_power_w"] == 300
    assert s["energy_j_power_integral"] == pytest.approx(0.5 * (100 + 300) * 0.01)


def test_summary_power_cap_in_one_sample_is_throttled():
    samples = [_sample(i * 0.01, 600, 0x4 if i == 3 else 0, sm=1980 - 10 * i, temp=40 + i) for i in range(10)]
    s = nvml.summarize_samples(samples)
    assert s["throttled"] is True
    assert s["throttle_reasons"] == "sw_power_cap"
    assert s["throttled_sample_fraction"] == pytest.approx(0.1)
    assert s["sm_clock_mhz_min"] == 1890 and s["temperature_c_max"] == 49


def test_trapezoid_of_constant_power():
    assert nvml.trapezoid_energy_j([0.0, 0.5, 1.0], [200.0, 200.0, 200.0]) == pytest.approx(200.0)


def test_missing_nvml_raises_clear_error(monkeypatch):
    """Without a driver (this CPU machine) the error names the cause; with one, it is skipped."""
    try:
        import pynvml

        pynvml.nvmlInit()
        pytest.skip("NVML works here; the missing-driver path cannot be shown")
    except ImportError:
        pass
    except Exception:
        pass
    monkeypatch.setattr(nvml, "_NVML", None)
    with pytest.raises(nvml.NvmlUnavailable, match="NVML could not start|pynvml is not installed"):
        nvml.device_handle()


@pytest.mark.gpu
def test_sampler_energy_is_plausible_for_real_work():
    handle = _nvml_handle_or_skip()
    import cupy

    a = cupy.random.default_rng(0).standard_normal((4096, 4096), dtype=cupy.float32)
    with nvml.NvmlSampler(handle) as s:
        t_end = time.perf_counter() + 1.5
        while time.perf_counter() < t_end:
            for _ in range(10):
                a @ a
            cupy.cuda.get_current_stream().synchronize()
    r = s.result
    assert r["energy_mj"] > 0
    assert 10.0 < r["avg_power_w"] < 1000.0, r
    assert r["window_s"] >= 1.5
    assert r["nvml_samples"] >= 50  # ~10 ms period over 1.5 s
    # The counter and the integral of sampled power describe the same window.
    assert r["energy_j_power_integral"] * 1e3 == pytest.approx(r["energy_mj"], rel=0.3)
    assert r["sm_clock_mhz_max"] > 0 and r["temperature_c_max"] > 0


@pytest.mark.gpu
def test_wait_for_cool_returns_at_once_when_already_cool():
    handle = _nvml_handle_or_skip()
    r = nvml.wait_for_cool(handle, max_temperature_c=200, timeout_s=1)
    assert r["cooled"] is True and r["cool_waited_s"] < 0.5
