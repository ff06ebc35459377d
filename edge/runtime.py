"""The device daemon: readers → decision (journaled) → actuators, in one asyncio TaskGroup."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import signal
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config.device import DeviceConfig
from config.errors import ConfigError
from config.vocab import Role
from edge import identity
from edge.decide import BadInput
from edge.device import Device
from edge.metrics import DeviceMetrics, for_daemon
from edge.runtime_logs import JournalBridge
from edge.status import Notice, notices, record_daemon, resume_sync
from edge.store import require_device
from edge.sync_link import engine_for, load_credentials
from hardware.base import Actuator, CodeReader, Counters, HardwareUnsupported, Scan, Shown
from hardware.faults import describe
from sync.client import CentralClient
from sync.logline import TEXT

log = logging.getLogger("festgate.runtime")

# Where the sync client's loops join the daemon: each is started as a task in the TaskGroup and
# cancelled with it. A factory, not a coroutine, so nothing is created that might never run.
SideLoop = Callable[[], Coroutine[Any, Any, None]]

MAX_RESTART_S = 60.0
HEALTHY_S = 30.0  # a reader that ran this long before failing starts its backoff over
DEVICE_ERROR = Shown("device_error", "Device error, call a supervisor", admits=False)


class _Stopping(Exception):
    """Raised inside the TaskGroup to cancel it on SIGTERM."""


class ActuatorWorker:
    """One thread per actuator, fed through a small bounded queue."""

    def __init__(self, actuator: Actuator, size: int = 8) -> None:
        self.actuator = actuator
        self.queue: queue.Queue[Shown | None] = queue.Queue(size)
        self.thread = threading.Thread(target=self._run, name=f"actuator-{actuator.name}")
        self.thread.daemon = True  # a wedged device must not keep the process alive

    def _run(self) -> None:
        try:
            while (shown := self.queue.get()) is not None:
                try:
                    self.actuator.show(shown)
                except Exception as exc:  # drivers log their own faults; this is a last guard
                    self.actuator.counters.add("faults")
                    log.error(
                        "actuator failed", extra={"actuator": self.actuator.name, **describe(exc)}
                    )
        finally:
            self.actuator.close()  # leaves a relay released

    def submit(self, shown: Shown) -> None:
        """Queue a verdict; if the device is stuck, drop it rather than stall the gate."""
        try:
            self.queue.put_nowait(shown)
        except queue.Full:
            self.actuator.counters.add("dropped")
            log.warning(
                "actuator queue full",
                extra={"event": "actuator.queue_full", "actuator": self.actuator.name},
            )

    def finish(self) -> None:
        """Ask the thread to show what is queued, close the device and end."""
        with contextlib.suppress(queue.Full):
            self.queue.put(None, timeout=1.0)


class Runtime:
    """Runs one device's readers, decisions and actuators until stopped."""

    def __init__(
        self,
        config: DeviceConfig,
        device: Device,
        readers: Sequence[CodeReader],
        actuators: Sequence[Actuator],
        *,
        side_loops: Sequence[SideLoop] = (),
        queue_size: int = 64,
        on_stop: Callable[[], None] | None = None,
        notices: Sequence[Notice] = (),
        metrics: DeviceMetrics | None = None,
    ) -> None:
        self.config = config
        self.device = device
        self.readers = list(readers)
        self.workers = [ActuatorWorker(a) for a in actuators]
        self.side_loops = list(side_loops)
        self.counters = Counters()
        self.queue_size = queue_size
        self.halt = threading.Event()  # tells reader threads to stop
        self._stop = asyncio.Event()
        self._threads: dict[str, threading.Thread] = {}
        self._inflight: asyncio.Task[None] | None = None
        self._basket: list[tuple[str, int]] = []
        self.started = asyncio.Event()
        self.on_stop = on_stop  # called once, as shutdown begins (the daemon arms a watchdog)
        self.notices = list(notices)  # what keeps this device from its job, said at start
        # Verdicts, latency, readers up: always counted, served only with `[metrics] listen`.
        self.metrics = metrics or DeviceMetrics()
        # Each reader's device open and answering or not, as its driver says (`ReaderState`):
        # central hears of it on each changes request (`sync.device_report`), ops see it on
        # the Devices page, the metric `festgate_reader_up` follows it.
        self.readers_up: dict[str, bool] = dict.fromkeys((r.name for r in self.readers), False)

    def stop(self) -> None:
        """Begin a bounded shutdown (the SIGTERM handler calls this)."""
        if self.on_stop is not None and not self._stop.is_set():
            self.on_stop()
        self.halt.set()
        self._stop.set()

    async def run(self) -> None:
        """Run until stop(); then finish the verdict in flight and close the hardware."""
        loop = asyncio.get_running_loop()
        self._scans: asyncio.Queue[Scan] = asyncio.Queue(self.queue_size)
        self._logs: asyncio.Queue[dict[str, Any]] = asyncio.Queue(256)
        bridge = JournalBridge(loop, self._logs)
        logging.getLogger().addHandler(bridge)
        installed = self._install_signals(loop)
        for reader in self.readers:
            reader.state.watch(self._watcher(loop, reader.name))
        for worker in self.workers:
            worker.thread.start()
        self._lifecycle(
            "daemon started",
            event="daemon.started",
            readers=",".join(r.name for r in self.readers),
            actuators=",".join(w.actuator.name for w in self.workers),
        )
        for notice in self.notices:
            # After the bridge is in place: journaled too, so ops sees it once the device syncs.
            log.log(notice.level, "%s", notice.text, extra={"event": f"daemon.{notice.code}"})
        self.started.set()
        try:
            async with asyncio.TaskGroup() as tg:
                for reader in self.readers:
                    tg.create_task(self._supervise(reader), name=f"reader-{reader.name}")
                tg.create_task(self._decide_loop(), name="decide")
                tg.create_task(self._journal_logs(), name="logs")
                for side in self.side_loops:
                    tg.create_task(side(), name=getattr(side, "__name__", "side-loop"))
                tg.create_task(self._until_stop(), name="stop")
        except* _Stopping:
            pass
        finally:
            try:
                await self._shutdown()
            finally:
                logging.getLogger().removeHandler(bridge)
                for sig in installed:
                    loop.remove_signal_handler(sig)

    def _lifecycle(self, msg: str, **fields: str) -> None:
        """Log a lifecycle event and journal it whatever the log level (not rate-limited)."""
        log.info(msg, extra=fields)
        with contextlib.suppress(asyncio.QueueFull):
            self._logs.put_nowait({"level": "info", "logger": log.name, TEXT: msg, **fields})

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> list[int]:
        installed: list[int] = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self.stop)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread (tests drive stop() themselves)
        return installed

    async def _until_stop(self) -> None:
        await self._stop.wait()
        log.info("stopping", extra={"event": "daemon.stopping"})
        raise _Stopping

    async def _shutdown(self) -> None:
        deadline = time.monotonic() + self.config.timeouts.shutdown_s
        self.halt.set()

        def left() -> float:
            return max(0.0, deadline - time.monotonic())

        if self._inflight is not None and not self._inflight.done():
            # The verdict in flight is finished: journaled and shown, never cut in half.
            try:
                await asyncio.wait_for(asyncio.shield(self._inflight), left() * 0.6)
            except TimeoutError:
                log.error("verdict in flight did not finish", extra={"event": "daemon.inflight"})
        self._lifecycle("daemon stopped", event="daemon.stopped")
        await asyncio.sleep(0)  # let the bridge's call_soon_threadsafe land in the queue
        await self._drain_logs(left() * 0.5)
        for worker in self.workers:
            worker.finish()
        threads = [w.thread for w in self.workers] + list(self._threads.values())
        # Worker threads cannot await; polling with a bound keeps shutdown within shutdown_s.
        while any(t.is_alive() for t in threads) and left() > 0:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        for thread in threads:
            if thread.is_alive():
                log.error("worker did not stop in time", extra={"thread": thread.name})

    def _watcher(self, loop: asyncio.AbstractEventLoop, name: str) -> Callable[[bool], None]:
        """What a reader's state calls, from its worker thread: the change lands on the loop,
        where the sync client reads `readers_up`, in the order the driver made it."""

        def changed(up: bool) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(self._reader_up, name, up)

        return changed

    def _reader_up(self, name: str, up: bool) -> None:
        self.readers_up[name] = up
        self.metrics.reader(name, up)

    async def _supervise(self, reader: CodeReader) -> None:
        backoff = self.config.timeouts.reader_restart_s
        while not self.halt.is_set():
            started = time.monotonic()
            try:
                await self._run_reader(reader)
                log.info(
                    "reader finished", extra={"event": "reader.finished", "reader": reader.name}
                )
                return
            except HardwareUnsupported as exc:
                log.error(
                    "reader disabled: %s",
                    exc,
                    extra={"event": "reader.disabled", "reader": reader.name},
                )
                return
            except Exception as exc:
                if self.halt.is_set():
                    return
                if time.monotonic() - started > HEALTHY_S:
                    backoff = self.config.timeouts.reader_restart_s
                self.counters.add(f"restarts.{reader.name}")
                log.error(
                    "reader failed, restarting in %.1f s",
                    backoff,
                    extra={"event": "reader.failed", "reader": reader.name, **describe(exc)},
                )
            with contextlib.suppress(TimeoutError):  # asyncio.timeout: see SyncEngine.push_loop
                async with asyncio.timeout(backoff):
                    await self._stop.wait()
            backoff = min(backoff * 2, MAX_RESTART_S)

    async def _run_reader(self, reader: CodeReader) -> None:
        """Run reader.scans in its own thread; return when it ends, raise what it raised."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[BaseException | None] = loop.create_future()

        def settle(outcome: BaseException | None) -> None:
            if not done.done():
                done.set_result(outcome)

        def work() -> None:
            outcome: BaseException | None = None
            try:
                for scan in reader.scans(self.halt):
                    loop.call_soon_threadsafe(self._offer, scan)
            except BaseException as exc:  # handed to the supervisor, which decides
                outcome = exc
            # Down however it ended, even if the driver did not say so; heard before `settle`.
            reader.state.set(False)
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(settle, outcome)

        thread = threading.Thread(target=work, name=f"reader-{reader.name}", daemon=True)
        self._threads[reader.name] = thread
        thread.start()
        outcome = await done
        if outcome is not None:
            raise outcome

    def _offer(self, scan: Scan) -> None:
        try:
            self._scans.put_nowait(scan)
        except asyncio.QueueFull:
            self.counters.add("queue_full")
            log.warning(
                "scan dropped: queue full",
                extra={"event": "scan.queue_full", "reader": scan.source},
            )

    async def _decide_loop(self) -> None:
        while True:
            scan = await self._scans.get()
            # A separate task, shielded: cancelling the group must not cut a verdict in half.
            self._inflight = asyncio.ensure_future(self.handle(scan))
            await asyncio.shield(self._inflight)

    async def handle(self, scan: Scan) -> None:
        """Decide one scan (journal commit inside Device) and then hand it to the actuators."""
        self.counters.add("scans")
        started = time.perf_counter()
        try:
            shown = await self._decide(scan)
        except BadInput as exc:
            shown = Shown(exc.code, exc.detail, admits=False, source=scan.source)
            log.warning(
                "scan refused: %s",
                exc.code,
                extra={"event": "scan.bad_input", "reader": scan.source},
            )
        except Exception as exc:
            self.counters.add("errors")
            log.exception(
                "decision failed",
                extra={"event": "scan.error", "reader": scan.source, **describe(exc)},
            )
            shown = DEVICE_ERROR
        if shown is None:
            return
        self.metrics.decided(shown.code, time.perf_counter() - started)
        self.counters.add("admitted" if shown.admits else "refused")
        log.info(
            "verdict %s",
            shown.code,
            extra={"event": "scan.verdict", "reader": scan.source, "verdict": shown.code},
        )
        for worker in self.workers:
            worker.submit(shown)

    async def _decide(self, scan: Scan) -> Shown | None:
        device = self.device
        if device.role is Role.GATE:
            result = await device.scan(gate_code(scan), exit=self.config.device.direction == "exit")
            return Shown(result.verdict.code, result.text, result.verdict.admits, scan.source)
        if device.role is Role.BAR:
            if scan.tag_uid is None:
                # A product barcode at a till adds to the basket that the next tap pays.
                self._basket.append((scan.label, 1))
                return Shown("basket", f"{len(self._basket)} item(s)", False, scan.source)
            if not self._basket:
                return Shown("empty_basket", "Scan products first", False, scan.source)
            basket, self._basket = self._basket, []
            sale = await device.charge(scan.tag_uid, products=basket)
            return Shown(sale.verdict.code, sale.text, sale.verdict.admits, scan.source)
        log.warning(
            "no live flow for this role", extra={"event": "scan.role", "role": str(device.role)}
        )
        return None

    async def _journal_logs(self) -> None:
        while True:
            payload = await self._logs.get()
            await journal_log(self.device, payload)

    async def _drain_logs(self, budget: float) -> None:
        end = time.monotonic() + budget
        while not self._logs.empty() and time.monotonic() < end:
            await journal_log(self.device, self._logs.get_nowait())


def gate_code(scan: Scan) -> str:
    """What a gate decides on: the code's text, an NDEF text or URI record, or the tag id."""
    if scan.text is not None:
        return scan.text
    for record in scan.ndef:
        if record.text:
            return record.text
    return scan.tag_uid.hex() if scan.tag_uid is not None else ""


async def journal_log(device: Device, payload: dict[str, Any]) -> None:
    """Append a device log event; it syncs to central like any other fact."""
    await device.record_log(payload)


@dataclass
class Parts:
    """The drivers built from a config, and the parts left out (name → why)."""

    readers: list[CodeReader] = field(default_factory=list)
    actuators: list[Actuator] = field(default_factory=list)
    disabled: dict[str, str] = field(default_factory=dict)


def build_parts(config: DeviceConfig) -> Parts:
    """Drivers for every configured reader and actuator; one whose library is missing is
    left out with a log line, so the rest of the device still works."""
    from hardware.registry import make_actuator, make_reader

    parts = Parts()
    for reader_cfg in config.readers:
        try:
            parts.readers.append(make_reader(reader_cfg))
        except HardwareUnsupported as exc:
            parts.disabled[reader_cfg.name] = str(exc)
            log.error("%s", exc, extra={"event": "reader.disabled", "reader": reader_cfg.name})
    for actuator_cfg in config.actuators:
        try:
            parts.actuators.append(make_actuator(actuator_cfg))
        except HardwareUnsupported as exc:
            parts.disabled[actuator_cfg.name] = str(exc)
            log.error(
                "%s", exc, extra={"event": "actuator.disabled", "actuator": actuator_cfg.name}
            )
    return parts


async def open_device(config: DeviceConfig, config_path: Path | None = None) -> Device:
    """The device's store and journal, as its config describes; the data dir must hold a
    device already (`festgate init` or `festgate catalog load` sets one up), and be one of
    the config's role."""
    data_dir = config.device.data_dir
    require_device(data_dir, config=config_path)
    device = await Device.open(
        data_dir,
        role=config.device.role,
        zone=config.device.zone,
        vendor=config.device.vendor,
        allowance_cap=config.cashless.offline_allowance_cents,
        online_window_ms=int(config.cashless.online_window_s * 1000),
    )
    stored = await identity.recorded(device.store)
    own = identity.resolve(None, load_credentials(data_dir), stored)
    if own.role is not None and own.role is not config.device.role:
        # The daemon would act as what the device is not (and central knows it as).
        await device.close()
        raise ConfigError(
            "device.role",
            [
                f"the config says {config.device.role}, but {data_dir} is a {own.role} (set by "
                f"its {own.source}): fix device.role, or point device.data_dir at a "
                f"{config.device.role}"
            ],
        )
    return device


async def run_daemon(
    config: DeviceConfig,
    *,
    side_loops: Sequence[SideLoop] = (),
    on_stop: Callable[[], None] | None = None,
    config_path: Path | None = None,
) -> Runtime:
    """`festgate run`: open the device, wire its hardware, run until SIGTERM, close."""
    device = await open_device(config, config_path)
    client = None
    engine = None
    stop_metrics: Callable[[], None] = lambda: None  # noqa: E731 - replaced when metrics are on
    try:
        loops = list(side_loops)
        creds = load_credentials(config.device.data_dir)
        if creds is not None:  # enrolled: the sync loops run beside the readers
            central = config.central
            client = CentralClient(
                str(central.url) if central.url else creds.central_url,
                token=creds.token,
                ca_bundle=central.ca_bundle,
                connect_timeout_s=central.connect_timeout_s,
                request_timeout_s=central.request_timeout_s,
            )
            engine = engine_for(
                device, client, long_poll_s=central.long_poll_s,
                push_interval_s=central.push_interval_s, max_backoff_s=central.max_backoff_s,
                keep_acked_s=central.keep_acked_hours * 3600,
            )  # fmt: skip
            await resume_sync(engine, device.store)
            loops.append(engine.run)
        parts = build_parts(config)
        metrics = None
        if config.metrics.listen is not None:
            metrics, stop_metrics = for_daemon(
                config.metrics.listen, device, engine, parts.disabled
            )
        await record_daemon(
            device.store,
            {
                "started_ms": device.clock(),
                "readers": [r.name for r in parts.readers],
                "actuators": [a.name for a in parts.actuators],
                "disabled": parts.disabled,
            },
        )
        found = notices(
            config.device.data_dir,
            enrolled=creds is not None,
            readers=len(parts.readers),
            has_catalog=device.catalog.festival is not None,
            config=config_path,
        )
        runtime = Runtime(
            config, device, parts.readers, parts.actuators,
            side_loops=loops, on_stop=on_stop, notices=found, metrics=metrics,
        )  # fmt: skip
        runtime.readers_up.update(dict.fromkeys(parts.disabled, False))  # no driver: down
        if client is not None:
            client.readers = runtime.readers_up  # read live at each changes request
        await runtime.run()
        return runtime
    finally:
        stop_metrics()
        if client is not None:
            await client.aclose()
        await device.close()
