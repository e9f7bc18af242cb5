#!/usr/bin/env python3
"""The Taskmaster benchmark driver: taskmasterd, supervisord and the posix_spawn floor, side by side.

Started by `bench/run`, which builds everything and passes the paths. For each N it runs the
floor program, then each supervisor on the same workload (N programs of `sleep 100000`, started
at once, output discarded), and writes `results.json` and `results.md` in the output directory.

Layout:
- Floor: the C program `spawn_floor.c` (posix_spawn N, then SIGTERM and reap N).
- Taskmasterd: one daemon run; API measurements go through `tmbench` (bench/client), the CLI
  measurement through `taskctl`.
- Supervisord: one daemon run; API measurements through its XML-RPC interface, the CLI one
  through `supervisorctl`.
- Every time that crosses a process boundary is CLOCK_MONOTONIC (time.monotonic_ns here).
"""

import argparse
import json
import math
import os
import platform
import resource
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

BENCH = Path(__file__).resolve().parent

# Repetitions: the full run, and --quick for the smoke test.
FULL = dict(startups=5, status_cli=20, status_rpc=20, restarts=50, sd_restarts=50, idle_secs=10.0,
            settle_secs=1.0, watchers=100, event_restarts=1000)
QUICK = dict(startups=1, status_cli=3, status_rpc=5, restarts=5, sd_restarts=3, idle_secs=2.0,
             settle_secs=0.5, watchers=10, event_restarts=50)

# The targets, checked at N = 1000 (see bench/README.md).
TARGET_N = 1000


class Unavailable(Exception):
    """A figure this system cannot give (the reason is recorded in place of the number)."""


# ---------------------------------------------------------------------------------------------
# /proc and process helpers


def now_ns():
    return time.monotonic_ns()


def ms_since(start_ns, end_ns=None):
    return ((end_ns if end_ns is not None else now_ns()) - start_ns) / 1e6


def proc_status(pid):
    """VmRSS, VmHWM, RssAnon and RssFile of `pid`, in MB (10^6 bytes)."""
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                fields[key] = int(value.split()[0]) * 1024 / 1e6
    return fields


def cpu_ticks(pid):
    """utime + stime of the whole thread group, in clock ticks."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def stolen_ticks():
    """CPU time the hypervisor gave to other guests (the `steal` column of /proc/stat), in
    clock ticks: other virtual machines on the host slow every figure without showing up in
    this one's process list."""
    with open("/proc/stat") as stat:
        fields = stat.readline().split()
    return int(fields[8]) if len(fields) > 8 else 0


def context_switches(pid):
    """Voluntary + involuntary context switches summed over every thread: each wake-up counts."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/status") as status:
                for line in status:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def children(pid):
    """The pids of the children of `pid`'s threads."""
    found = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as kids:
                found.extend(int(word) for word in kids.read().split())
        except FileNotFoundError:
            pass
    return found


def runs_sleep(pid):
    """Whether `pid` has exec'd `sleep`."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            argv0 = cmdline.read().split(b"\0", 1)[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return argv0 == b"sleep" or argv0.endswith(b"/sleep")


# Blocking waits a daemon sits in when it has nothing to do: select, poll, epoll_wait, pselect6,
# ppoll, epoll_pwait (x86-64 numbers).
IDLE_SYSCALLS = {"23", "7", "232", "270", "271", "281"}


def wait_quiet(pid, timeout=10.0):
    """Waits until `pid` has been blocked in its event loop's wait for 50 ms in a row."""
    deadline = time.monotonic() + timeout
    quiet_since = None
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/syscall") as syscall:
                blocked = syscall.read().split()[0] in IDLE_SYSCALLS
        except (FileNotFoundError, IndexError):
            return
        if not blocked:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= 0.05:
            return
        time.sleep(0.005)


def alive(pid):
    """Whether `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def wait_exit(process, timeout):
    """Waits for the child `process` to exit and returns the monotonic time it did, seen through
    a pidfd (no polling loop); None on timeout. The child is reaped."""
    pidfd = os.pidfd_open(process.pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(timeout * 1000):
            return None
        exited = now_ns()
    finally:
        os.close(pidfd)
    process.wait()
    return exited


def median(samples):
    return statistics.median(samples) if samples else None


def percentile(samples, fraction):
    """Nearest-rank percentile."""
    if not samples:
        return None
    ordered = sorted(samples)
    rank = min(len(ordered), max(1, math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


def run_json(argv, timeout):
    """Runs `argv` and parses the last line of its stdout as JSON."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{Path(argv[0]).name} {argv[1:]} failed: {done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def kill_everything(daemon_pid, known_children):
    """Last-resort cleanup after a failure: SIGKILL the daemon's children and the daemon."""
    for pid in set(children(daemon_pid)) | set(known_children):
        for send in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
            try:
                send()
            except (ProcessLookupError, PermissionError):
                pass
    try:
        os.kill(daemon_pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# ---------------------------------------------------------------------------------------------
# The floor


def run_floor(paths, n):
    return run_json([paths.floor, str(n)], timeout=600)


def summarize_floor(runs):
    return {
        "spawn_ms": median([run["spawn_ms"] for run in runs]),
        "stop_ms": median([run["stop_ms"] for run in runs]),
        "runs": runs,
    }


def startup_cycles(paths, n, cycles, log):
    """`cycles` rounds of: the floor program, then a taskmasterd start-up and shutdown. Start-up
    times on a 2-core machine vary by 20% from run to run, so the floor and the daemon take
    turns and each figure is a median."""
    floors, startups, shutdowns = [], [], []
    for cycle in range(cycles):
        log(f"  floor and taskmasterd start-up, round {cycle + 1} of {cycles}")
        floors.append(run_floor(paths, n))
        workdir = Path(tempfile.mkdtemp(prefix=f"tmbench-startup-{n}-"))
        daemon = Taskmasterd(paths, n, workdir)
        try:
            startups.append(daemon.start())
            time.sleep(0.2)
            shutdowns.append(daemon.shutdown())
        finally:
            daemon.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    return floors, startups, shutdowns


# ---------------------------------------------------------------------------------------------
# taskmasterd


class Taskmasterd:
    name = "taskmasterd"

    def __init__(self, paths, n, workdir):
        self.paths = paths
        self.n = n
        self.dir = workdir
        self.socket = workdir / "taskmaster.sock"
        self.config = workdir / "taskmaster.yaml"
        self.process = None
        self.pids = []
        lines = [
            "daemon:",
            f"  socket: {self.socket}",
            f"  logfile: {workdir / 'taskmaster.log'}",
            f"  pidfile: {workdir / 'taskmaster.pid'}",
            "programs:",
        ]
        for index in range(n):
            # No stdout/stderr key: output is discarded.
            lines += [
                f"  p{index}:",
                "    cmd: sleep 100000",
                "    starttime: 0",
                "    autorestart: always",
            ]
        self.config.write_text("\n".join(lines) + "\n")

    def tmbench(self, *argv):
        return [str(self.paths.tmbench), "--socket", str(self.socket), *argv]

    def start(self):
        """Launches the daemon; returns ms from launch until a client sees all N RUNNING."""
        waiter = subprocess.Popen(self.tmbench("wait-running", "--n", str(self.n)),
                                  stdout=subprocess.PIPE, text=True)
        if waiter.stdout.readline().strip() != "waiting":
            raise RuntimeError("tmbench wait-running did not start")
        stderr = open(self.dir / "daemon.stderr", "w")
        launched = now_ns()
        self.process = subprocess.Popen(
            [str(self.paths.taskmasterd), "-f", "-c", str(self.config)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)
        stderr.close()
        out, _ = waiter.communicate(timeout=900)
        if waiter.returncode != 0:
            raise RuntimeError(f"taskmasterd did not bring up {self.n} programs; see "
                               f"{self.dir / 'daemon.stderr'}")
        seen = json.loads(out.strip().splitlines()[-1])["t_ns"]
        self.pids = [entry["pid"] for entry in self.instances()]
        return ms_since(launched, seen)

    def instances(self):
        return run_json(self.tmbench("pids"), timeout=120)["instances"]

    def status_cli(self, reps):
        argv = [str(self.paths.taskctl), "-s", str(self.socket), "status"]
        samples = []
        for _ in range(reps):
            start = now_ns()
            done = subprocess.run(argv, capture_output=True, timeout=300)
            samples.append(ms_since(start))
            running = done.stdout.count(b"RUNNING")
            if done.returncode != 0 or running < self.n:
                raise Unavailable(
                    f"`taskctl status` exited {done.returncode} and listed {running} of "
                    f"{self.n} RUNNING: {done.stderr.decode(errors='replace').strip()[:200]}")
        return samples

    def status_rpc(self, reps):
        report = run_json(self.tmbench("status-rpc", "--count", str(reps)), timeout=300)
        return report["samples_ms"]

    def restarts(self, reps):
        """Returns (kill -> replacement RUNNING and exec'd, as the client sees it; kill ->
        STARTED event stamped by the daemon)."""
        report = run_json(self.tmbench("restart", "--count", str(reps)), timeout=600)
        return report["samples_ms"], report["stamped_ms"]

    def events(self, watchers, restarts):
        return run_json(self.tmbench("events", "--watchers", str(watchers),
                                     "--restarts", str(restarts)), timeout=900)

    def shutdown(self):
        """Returns ms from the Shutdown request until the daemon has exited."""
        self.pids = [entry["pid"] for entry in self.instances()]
        asker = subprocess.Popen(self.tmbench("shutdown"), stdout=subprocess.PIPE, text=True)
        exited = wait_exit(self.process, timeout=600)
        out, _ = asker.communicate(timeout=60)
        if exited is None:
            raise RuntimeError("taskmasterd did not exit within 600 s of Shutdown")
        sent = json.loads(out.strip().splitlines()[-1])["t_ns"]
        return ms_since(sent, exited)

    def cleanup(self):
        if self.process is not None and self.process.poll() is None:
            kill_everything(self.process.pid, self.pids)
            self.process.wait()


# ---------------------------------------------------------------------------------------------
# supervisord


class Supervisord:
    name = "supervisord"

    def __init__(self, paths, n, workdir):
        self.paths = paths
        self.n = n
        self.dir = workdir
        self.socket = workdir / "supervisor.sock"
        self.config = workdir / "supervisord.conf"
        self.process = None
        self.pids = []
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        # Three pipes a child; supervisord refuses to start below minfds.
        minfds = min(hard, max(1024, 4 * n + 256)) if hard != -1 else 4 * n + 256
        sections = [
            "[unix_http_server]",
            f"file={self.socket}",
            "",
            "[supervisord]",
            f"logfile={workdir / 'supervisord.log'}",
            f"pidfile={workdir / 'supervisord.pid'}",
            f"childlogdir={workdir}",
            "nodaemon=true",
            f"minfds={minfds}",
            f"minprocs={max(200, n + 256)}",
            "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "",
            "[supervisorctl]",
            f"serverurl=unix://{self.socket}",
        ]
        for index in range(n):
            sections += [
                "",
                f"[program:p{index}]",
                "command=sleep 100000",
                "startsecs=0",
                "autorestart=true",
                "stdout_logfile=NONE",
                "stderr_logfile=NONE",
            ]
        self.config.write_text("\n".join(sections) + "\n")

    def rpc(self):
        import xmlrpc.client

        from supervisor.xmlrpc import SupervisorTransport

        transport = SupervisorTransport(None, None, f"unix://{self.socket}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    def all_info(self):
        return self.rpc().supervisor.getAllProcessInfo()

    def start(self):
        """Launches supervisord; returns ms from launch until getAllProcessInfo shows all N
        RUNNING. Polls back off (2% of the time elapsed, 10 to 250 ms) so the poller's own load
        stays small against supervisord's single thread."""
        log = open(self.dir / "daemon.stderr", "w")
        launched = now_ns()
        self.process = subprocess.Popen(
            [str(self.paths.supervisord), "-n", "-c", str(self.config)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"supervisord exited; see {self.dir / 'daemon.stderr'}")
            try:
                info = self.all_info()
            except OSError:  # not listening yet
                info = []
            seen = now_ns()
            if len(info) == self.n and all(entry["statename"] == "RUNNING" for entry in info):
                self.pids = [entry["pid"] for entry in info]
                return ms_since(launched, seen)
            if ms_since(launched) > 900_000:
                raise RuntimeError("supervisord did not bring everything up in 900 s")
            time.sleep(min(0.25, max(0.01, ms_since(launched) / 1e3 * 0.02)))

    def status_cli(self, reps):
        argv = [str(self.paths.supervisorctl), "-c", str(self.config), "status"]
        samples = []
        for _ in range(reps):
            start = now_ns()
            done = subprocess.run(argv, capture_output=True, timeout=900)
            samples.append(ms_since(start))
            running = done.stdout.count(b"RUNNING")
            if running < self.n:
                raise RuntimeError(f"supervisorctl status listed {running} of {self.n} RUNNING")
        return samples

    def status_rpc(self, reps):
        proxy = self.rpc()
        proxy.supervisor.getAllProcessInfo()
        samples = []
        for _ in range(reps):
            start = now_ns()
            proxy.supervisor.getAllProcessInfo()
            samples.append(ms_since(start))
        return samples

    def restarts(self, reps):
        """kill -9 one child, then: its replacement seen exec'd `sleep` in /proc (nothing asks
        supervisord meanwhile, so it is not woken early), then getProcessInfo polled until it
        says RUNNING with that pid (this poll does wake supervisord's loop, which only helps
        it). Returns (kill -> RUNNING samples, kill -> exec samples). Before each kill,
        supervisord is left to finish answering the previous polls: with 1000 programs one
        turn of its loop takes tens of milliseconds, and a kill that lands while it is still
        busy is handled in the next turn instead of after its 1 s poll timeout."""
        proxy = self.rpc()
        info = proxy.supervisor.getAllProcessInfo()
        names = [entry["name"] for entry in info]
        pids = {entry["name"]: entry["pid"] for entry in info}
        stride = max(1, len(names) // max(1, reps))
        running, execd = [], []
        for round_ in range(reps):
            name = names[(round_ * stride) % len(names)]
            old = pids[name]
            wait_quiet(self.process.pid)
            before = set(children(self.process.pid))
            start = now_ns()
            os.kill(old, signal.SIGKILL)
            new = None
            while new is None:
                for pid in set(children(self.process.pid)) - before:
                    if runs_sleep(pid):
                        new = pid
                        break
                else:
                    if ms_since(start) > 60_000:
                        raise RuntimeError(f"{name} was not replaced within 60 s")
                    time.sleep(0.0005)
            exec_seen = now_ns()
            while True:
                entry = proxy.supervisor.getProcessInfo(name)
                if entry["pid"] == new and entry["statename"] == "RUNNING":
                    break
                time.sleep(0.001)
            running.append(ms_since(start))
            execd.append(ms_since(start, exec_seen))
            pids[name] = new
        return running, execd

    def shutdown(self):
        self.pids = [entry["pid"] for entry in self.all_info()]
        sent = now_ns()
        self.rpc().supervisor.shutdown()
        exited = wait_exit(self.process, timeout=900)
        if exited is None:
            raise RuntimeError("supervisord did not exit within 900 s of shutdown")
        return ms_since(sent, exited)

    def cleanup(self):
        if self.process is not None and self.process.poll() is None:
            kill_everything(self.process.pid, self.pids)
            self.process.wait()


# ---------------------------------------------------------------------------------------------
# One system at one N


def measure(system, reps, log, startups=(), shutdowns=()):
    """Runs every measurement on `system`; a failed one records its error and the rest go on.
    `startups` and `shutdowns` are earlier samples of the same figures (see startup_cycles);
    this run's own are added to them and the medians reported."""
    figures = {}
    errors = {}

    def step(key, action):
        log(f"  {system.name}: {key}")
        try:
            action()
        except Unavailable as reason:
            errors[key] = str(reason)
        except Exception as error:  # recorded, reported, and the run goes on
            errors[key] = f"{type(error).__name__}: {error}"
            traceback.print_exc()

    try:
        startups = [*startups, system.start()]
        figures["startup_ms"] = median(startups)
        figures["startup_samples_ms"] = startups
    except Exception as error:
        errors["startup_ms"] = f"{type(error).__name__}: {error}"
        traceback.print_exc()
        system.cleanup()
        return {"figures": figures, "errors": errors}
    pid = system.process.pid

    def idle():
        time.sleep(reps["settle_secs"])
        ticks, switches = cpu_ticks(pid), context_switches(pid)
        time.sleep(reps["idle_secs"])
        figures["idle_ticks"] = cpu_ticks(pid) - ticks
        figures["idle_wakeups"] = context_switches(pid) - switches
        figures["idle_secs"] = reps["idle_secs"]

    def memory():
        status = proc_status(pid)
        figures["rss_mb"] = status["VmRSS"]
        figures["hwm_mb"] = status["VmHWM"]
        # VmRSS = RssAnon (heap, stacks) + RssFile (resident code of the binary and libraries)
        # + RssShmem; kept in results.json only.
        figures["rss_anon_mb"] = status.get("RssAnon")
        figures["rss_file_mb"] = status.get("RssFile")

    def status_cli():
        samples = system.status_cli(reps["status_cli"])
        figures["status_cli_ms"] = median(samples)
        figures["status_cli_samples_ms"] = samples

    def status_rpc():
        samples = system.status_rpc(reps["status_rpc"])
        figures["status_rpc_ms"] = median(samples)
        figures["status_rpc_samples_ms"] = samples

    def restarts():
        if isinstance(system, Supervisord):
            samples, execd = system.restarts(reps["sd_restarts"])
            figures["restart_exec_p50_ms"] = median(execd)
            figures["restart_exec_samples_ms"] = execd
        else:
            samples, stamped = system.restarts(reps["restarts"])
            figures["restart_stamped_p50_ms"] = median(stamped)
            figures["restart_stamped_p99_ms"] = percentile(stamped, 0.99)
            figures["restart_stamped_samples_ms"] = stamped
        figures["restart_p50_ms"] = median(samples)
        figures["restart_p99_ms"] = percentile(samples, 0.99)
        figures["restart_samples_ms"] = samples

    def events():
        report = system.events(reps["watchers"], reps["event_restarts"])
        figures["events_lost"] = report["lost_total"] + report["lagged_missed"]
        figures["events_p50_ms"] = report["latency_p50_ms"]
        figures["events_p99_ms"] = report["latency_p99_ms"]
        figures["events_report"] = report
        if report["broken_streams"]:
            errors["events"] = f"broken streams: {report['broken_streams'][:3]}"

    def peak_memory():
        figures["hwm_end_mb"] = proc_status(pid)["VmHWM"]

    def shutdown():
        samples = [*shutdowns, system.shutdown()]
        figures["shutdown_ms"] = median(samples)
        figures["shutdown_samples_ms"] = samples
        survivors = [child for child in system.pids if alive(child)]
        figures["shutdown_survivors"] = len(survivors)
        if survivors:
            errors["shutdown_ms"] = f"{len(survivors)} programs still alive after the daemon exited"
            for child in survivors:
                os.kill(child, signal.SIGKILL)

    try:
        step("idle_ticks", idle)
        step("rss_mb", memory)
        step("status_cli_ms", status_cli)
        step("status_rpc_ms", status_rpc)
        step("restart_p50_ms", restarts)
        if isinstance(system, Taskmasterd):
            step("events_lost", events)
        step("hwm_end_mb", peak_memory)
        step("shutdown_ms", shutdown)
    finally:
        system.cleanup()
    return {"figures": figures, "errors": errors}


# ---------------------------------------------------------------------------------------------
# Report


# (key, label, target text, check(taskmasterd figures, supervisord figures, floor) -> bool|None)
ROWS = [
    ("startup_ms", "start-up: launch → all N RUNNING (ms)",
     "≤ 1.3× floor and ≥ 10× faster than supervisord",
     lambda tm, sd, floor: tm["startup_ms"] <= 1.3 * floor["spawn_ms"]
     and ("startup_ms" not in sd or sd["startup_ms"] >= 10 * tm["startup_ms"])),
    ("rss_mb", "daemon VmRSS with N running (MB)", "≤ 6 MB",
     lambda tm, sd, floor: tm["rss_mb"] <= 6),
    ("hwm_mb", "daemon VmHWM after start-up (MB)", "", None),
    ("hwm_end_mb", "daemon VmHWM at the end of the run (MB)", "", None),
    ("status_cli_ms", "status, one-shot command, median (ms)", "< 20 ms",
     lambda tm, sd, floor: tm["status_cli_ms"] < 20),
    ("status_rpc_ms", "status, the RPC alone, median (ms)", "< 2 ms",
     lambda tm, sd, floor: tm["status_rpc_ms"] < 2),
    ("restart_p50_ms", "restart after kill -9, median (ms)", "< 3 ms",
     lambda tm, sd, floor: tm["restart_p50_ms"] < 3),
    ("restart_p99_ms", "restart after kill -9, p99 (ms)", "< 10 ms",
     lambda tm, sd, floor: tm["restart_p99_ms"] < 10),
    ("restart_stamped_p50_ms", "restart: kill -9 → STARTED stamped by the daemon, median (ms)",
     "", None),
    ("restart_stamped_p99_ms", "restart: kill -9 → STARTED stamped by the daemon, p99 (ms)",
     "", None),
    ("restart_exec_p50_ms", "restart: kill -9 → replacement exec'd, median (ms)", "", None),
    ("idle_ticks", "idle CPU over the idle window (ticks)", "0",
     lambda tm, sd, floor: tm["idle_ticks"] == 0),
    ("idle_wakeups", "idle wake-ups (context switches, all threads)", "", None),
    ("shutdown_ms", "shutdown: request → daemon exited, all N stopped (ms)", "< 150 ms",
     lambda tm, sd, floor: tm["shutdown_ms"] < 150),
    ("events_lost", "events lost by watchers that keep up", "0",
     lambda tm, sd, floor: tm["events_lost"] == 0),
    ("events_p50_ms", "event delivery latency p50 (ms)", "", None),
    ("events_p99_ms", "event delivery latency p99 (ms)", "< 5 ms",
     lambda tm, sd, floor: tm["events_p99_ms"] < 5),
]

def fmt(value):
    if value is None:
        return "—"
    if isinstance(value, int):
        return str(value)
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def ratio(numerator, denominator):
    if numerator is None or denominator is None:
        return "—"
    if denominator == 0:
        return "∞" if numerator else "—"
    quotient = numerator / denominator
    return f"{quotient:.2f}×" if quotient < 10 else f"{quotient:.1f}×"


def check_targets(n, result):
    """{key: True/False/None} for the targets at N = TARGET_N."""
    if n != TARGET_N:
        return {}
    tm = result.get("taskmasterd", {}).get("figures", {})
    sd = result.get("supervisord", {}).get("figures", {})
    floor = result.get("floor", {})
    verdicts = {}
    for key, _, _, check in ROWS:
        if check is None:
            continue
        try:
            verdicts[key] = bool(check(tm, sd, floor))
        except (KeyError, TypeError):
            verdicts[key] = None
    if "startup_ms" not in sd:
        verdicts["startup_vs_supervisord"] = None
    return verdicts


def markdown(results, meta):
    lines = ["# Taskmaster benchmark", "",
             f"Command: `{meta['command']}`  ", f"Date: {meta['date']}  ",
             f"Machine: {meta['machine']['cpu']}, {meta['machine']['nproc']} cores, "
             f"{meta['machine']['memory']}, Linux {meta['machine']['kernel']}  ",
             f"Builds: taskmasterd {meta['profile']} build; supervisor "
             f"{meta['machine'].get('supervisor', 'not run')} on Python "
             f"{meta['machine'].get('python')}  ",
             f"Repetitions: {meta['reps']}", ""]
    for n, result in results.items():
        n = int(n)
        tm = result.get("taskmasterd", {}).get("figures", {})
        sd = result.get("supervisord", {}).get("figures", {})
        floor = result.get("floor", {})
        verdicts = check_targets(n, result)
        lines += [f"## N = {n}", "",
                  "| metric | floor | taskmasterd | supervisord | supervisord ÷ taskmasterd "
                  "| target (N = 1000) | met |",
                  "|---|---:|---:|---:|---:|---|:-:|"]
        for key, label, target, _ in ROWS:
            floor_text = ""
            tm_text, sd_text = fmt(tm.get(key)), fmt(sd.get(key))
            if key == "startup_ms":
                floor_text = f"{fmt(floor.get('spawn_ms'))} (posix_spawn ×N)"
                if tm.get(key) is not None and floor.get("spawn_ms"):
                    tm_text += f" ({ratio(tm[key], floor['spawn_ms'])} floor)"
                if sd.get(key) is not None and floor.get("spawn_ms"):
                    sd_text += f" ({ratio(sd[key], floor['spawn_ms'])} floor)"
            if key == "shutdown_ms":
                floor_text = f"{fmt(floor.get('stop_ms'))} (SIGTERM + reap ×N)"
            if key.startswith("events_") and not sd:
                sd_text = "—"
            elif key.startswith("events_"):
                sd_text = "n/a"
            if key == "restart_exec_p50_ms":
                tm_text = "= median above"
            if key.startswith("restart_stamped_"):
                sd_text = "n/a" if sd else "—"
            if key.startswith("idle_") and tm.get("idle_secs"):
                label = label.replace("the idle window", f"{tm['idle_secs']:g} s")
            met = verdicts.get(key)
            met_text = "" if key not in verdicts else {True: "✅", False: "❌", None: "?"}[met]
            lines.append(f"| {label} | {floor_text} | {tm_text} | {sd_text} | "
                         f"{ratio(sd.get(key), tm.get(key)) if key in sd and key in tm else '—'} | "
                         f"{target} | {met_text} |")
        errors = {**{f"taskmasterd {k}": v for k, v in result.get("taskmasterd", {}).get("errors", {}).items()},
                  **{f"supervisord {k}": v for k, v in result.get("supervisord", {}).get("errors", {}).items()}}
        if errors:
            lines += ["", "Not measured or failed:", ""]
            lines += [f"- {key}: {value}" for key, value in errors.items()]
        if tm.get("startup_samples_ms"):
            lines += ["", "Start-up samples (ms): taskmasterd "
                      + ", ".join(fmt(x) for x in tm["startup_samples_ms"]) + "; floor "
                      + ", ".join(fmt(run["spawn_ms"]) for run in floor.get("runs", []))
                      + (f"; supervisord {fmt(sd['startup_ms'])} (one run)" if sd.get("startup_ms") else "")
                      + "."]
        events = tm.get("events_report")
        if events:
            lines += ["", f"Events: {events['watchers']} watchers, {events['restarts']} kill -9 "
                      f"restarts, {events['emitted']} events each ({events['deliveries']:,} "
                      f"deliveries) in {events['run_ms']:,.0f} ms; {events['lagged_notices']} "
                      f"LAGGED notices; max latency {fmt(events['latency_max_ms'])} ms."]
        if result.get("elapsed_s"):
            share = result["stolen_s"] / (result["elapsed_s"] * (os.cpu_count() or 1))
            lines += ["", f"CPU stolen by the hypervisor during this N: {result['stolen_s']:.1f} s "
                      f"over {result['elapsed_s']:.0f} s ({share:.1%} of the machine)"
                      + (": other guests disturbed these figures." if share > 0.02 else ".")]
        if verdicts:
            met = sum(1 for v in verdicts.values() if v)
            lines += ["", f"Targets at N = {n}: {met} of {len(verdicts)} met."]
        lines.append("")
    return "\n".join(lines)


def machine_info(paths):
    cpu = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        total_kb = int(meminfo.readline().split()[1])
    info = {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "kernel": platform.release(),
        "memory": f"{total_kb / 2**20:.0f} GiB",
        "python": platform.python_version(),
        "rlimit_nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
    }
    try:
        import supervisor.options

        info["supervisor"] = supervisor.options.VERSION
    except Exception:
        pass
    return info


# ---------------------------------------------------------------------------------------------


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", default="100,1000", help="comma-separated N (default 100,1000)")
    parser.add_argument("--supervisord-n", help="the N at which supervisord runs too "
                        "(default: every N)")
    parser.add_argument("--skip-supervisord", action="store_true")
    parser.add_argument("--quick", action="store_true", help="few repetitions (smoke test)")
    parser.add_argument("--out", default=str(BENCH / "out"), help="output directory")
    parser.add_argument("--bin-dir", required=True, help="holds taskmasterd and taskctl")
    parser.add_argument("--tmbench", required=True)
    parser.add_argument("--floor", required=True)
    parser.add_argument("--venv", help="the virtual environment with supervisor")
    parser.add_argument("--profile", default="release")
    parser.add_argument("--command", default="bench/run", help="the command line, for the record")
    args = parser.parse_args()
    args.ns = [int(n) for n in args.n.split(",") if n.strip()]
    if args.skip_supervisord:
        args.supervisord_ns = set()
    elif args.supervisord_n:
        args.supervisord_ns = {int(n) for n in args.supervisord_n.split(",") if n.strip()}
    else:
        args.supervisord_ns = set(args.ns)
    bin_dir = Path(args.bin_dir)
    args.taskmasterd, args.taskctl = bin_dir / "taskmasterd", bin_dir / "taskctl"
    if args.venv:
        args.supervisord = Path(args.venv) / "bin" / "supervisord"
        args.supervisorctl = Path(args.venv) / "bin" / "supervisorctl"
    elif args.supervisord_ns:
        parser.error("--venv is needed unless supervisord is skipped")
    return args


def rewrite_table(out):
    """Writes results.md again from results.json (after a change to the table's layout)."""
    saved = json.loads((out / "results.json").read_text())
    table = markdown(saved["results"], saved["meta"])
    (out / "results.md").write_text(table)
    print(table)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--rewrite-table":
        rewrite_table(Path(sys.argv[2]))
        return 0
    args = parse_args()
    reps = QUICK if args.quick else FULL
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def log(text):
        print(text, file=sys.stderr, flush=True)

    meta = {
        "command": args.command,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine_info(args),
        "profile": args.profile,
        "reps": ", ".join(f"{key}={value}" for key, value in reps.items()),
    }
    results = {}
    for n in args.ns:
        log(f"N = {n}")
        steal_before, started = stolen_ticks(), time.monotonic()
        floors, startups, shutdowns = startup_cycles(args, n, reps["startups"] - 1, log)
        floors.append(run_floor(args, n))
        result = {"floor": summarize_floor(floors)}
        systems = [Taskmasterd] + ([Supervisord] if n in args.supervisord_ns else [])
        for system_class in systems:
            workdir = Path(tempfile.mkdtemp(prefix=f"tmbench-{system_class.name}-{n}-"))
            system = system_class(args, n, workdir)
            if system_class is Taskmasterd:
                result[system.name] = measure(system, reps, log, startups, shutdowns)
            else:
                result[system.name] = measure(system, reps, log)
            if result[system.name]["errors"]:
                log(f"  {system.name}: kept {workdir} (its logs) after errors")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
        result["stolen_s"] = (stolen_ticks() - steal_before) / os.sysconf("SC_CLK_TCK")
        result["elapsed_s"] = time.monotonic() - started
        result["targets"] = check_targets(n, result)
        results[str(n)] = result
        # Written after each N, so a long run that is cut short keeps what it measured.
        (out / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    table = markdown(results, meta)
    (out / "results.md").write_text(table)
    print(table)
    failed = any(system.get("errors") for result in results.values()
                 for name, system in result.items() if name in ("taskmasterd", "supervisord"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
