"""System probe: CPU, memory, disks and network of this host, through psutil (LIBRARIES.md B7)."""

from __future__ import annotations

import asyncio

import psutil

from agent.config import Config
from agent.probes.base import Probe, ProbeResult
from agent.samples import Sample, sample

# Pseudo and virtual filesystems that df hides too: they have no capacity worth alerting on.
_SKIP_FSTYPES = {"squashfs", "tmpfs", "devtmpfs", "overlay", "proc", "sysfs", "nsfs", "autofs", "ramfs", "iso9660"}


def disk_samples(mountpoint: str, usage) -> list[Sample]:
    """`usage` is psutil's sdiskusage; the ratio is used / (used + free), as df computes it."""
    denominator = usage.used + usage.free
    ratio = usage.used / denominator if denominator else 0.0
    return [
        sample("caretaker_disk_usage_ratio", ratio, mountpoint=mountpoint),
        sample("caretaker_disk_free_bytes", usage.free, mountpoint=mountpoint),
    ]


def memory_samples(vm) -> list[Sample]:
    """`vm` is psutil's svmem; usage counts what is not available, so page cache is not 'used'."""
    ratio = (vm.total - vm.available) / vm.total if vm.total else 0.0
    return [
        sample("caretaker_memory_usage_ratio", ratio),
        sample("caretaker_memory_available_bytes", vm.available),
    ]


def default_mountpoints() -> list[str]:
    seen, out = set(), []
    for part in psutil.disk_partitions(all=False):
        if part.fstype in _SKIP_FSTYPES or part.device in seen:
            continue
        seen.add(part.device)
        out.append(part.mountpoint)
    return out or ["/"]


class SystemProbe(Probe):
    """Exports cpu/memory/disk/network series of DESIGN.md §6 'system'. Partial data beats none:
    a mountpoint that cannot be read is reported in `reason` and skipped."""

    kind = "system"

    def __init__(self, target: str, interval: float, timeout: float,
                 mountpoints: list[str] | None, network_devices: list[str] | None):
        super().__init__(target, interval, timeout)
        self.mountpoints = mountpoints
        self.network_devices = network_devices
        psutil.cpu_percent(interval=None)  # the first call returns a meaningless 0.0 (LIBRARIES.md B7)

    def _measure(self) -> ProbeResult:
        samples = [sample("caretaker_cpu_usage_ratio", psutil.cpu_percent(interval=None) / 100.0)]
        samples += memory_samples(psutil.virtual_memory())
        problems = []
        for mp in self.mountpoints or default_mountpoints():
            try:
                samples += disk_samples(mp, psutil.disk_usage(mp))
            except OSError as exc:
                problems.append(f"{mp}: {exc.strerror}")
        for device, io in sorted(psutil.net_io_counters(pernic=True).items()):
            if (self.network_devices is None and device == "lo") or (
                    self.network_devices is not None and device not in self.network_devices):
                continue
            samples.append(sample("caretaker_network_receive_bytes_total", io.bytes_recv, device=device))
            samples.append(sample("caretaker_network_transmit_bytes_total", io.bytes_sent, device=device))
        mem = next(s for s in samples if s.name == "caretaker_memory_usage_ratio").value
        disks = [s for s in samples if s.name == "caretaker_disk_usage_ratio"]
        fullest = max(disks, key=lambda s: s.value, default=None)
        summary = f"memory {mem:.0%}" + (f", {fullest.label('mountpoint')} {fullest.value:.0%} used" if fullest else "")
        return ProbeResult(samples, ok=not problems, reason="; ".join(problems), summary=summary)

    async def run(self) -> ProbeResult:
        return await asyncio.to_thread(self._measure)


def build(config: Config, deps) -> list[Probe]:
    s = config.system
    if not s.enabled:
        return []
    return [SystemProbe(config.agent.hostname, s.interval, s.timeout, s.mountpoints, s.network_devices)]
