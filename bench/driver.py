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
import shlex
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


# The programs of the measurements that predate output capture: output discarded, as it was
# measured then (without the keys, taskmasterd captures it into files).
SLEEP_DISCARDED = {"cmd": "sleep 100000", "starttime": 0, "autorestart": "always",
                   "stdout": "null", "stderr": "null"}
SD_SLEEP_DISCARDED = {"command": "sleep 100000", "startsecs": 0, "autorestart": "true",
                      "stdout_logfile": "NONE", "stderr_logfile": "NONE"}


def yaml_str(text):
    """`text` as a YAML scalar (a JSON string is a YAML double-quoted one)."""
    return json.dumps(text)


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


def machine_busy_ticks():
    """Every CPU's non-idle time (user, nice, system, irq, softirq, steal), in clock ticks."""
    with open("/proc/stat") as stat:
        fields = [int(word) for word in stat.readline().split()[1:]]
    return sum(fields[:8]) - fields[3] - fields[4]


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


# What the benchmark's programs exec: a leftover process with another name is not ours.
OUR_PROGRAMS = {b"sleep", b"sh", b"yes", b"head", b"ticker"}


def kill_orphans(known_children):
    """After a daemon died without stopping its programs: SIGKILL the process groups of the
    ones still alive. Each program leads its own group (both daemons make one per program);
    a pid is only touched if it still leads its group and runs one of our programs, so a
    reused pid is left alone."""
    for pid in known_children:
        try:
            if not pid or not alive(pid) or os.getpgid(pid) != pid:
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                argv0 = cmdline.read().split(b"\0", 1)[0].rsplit(b"/", 1)[-1]
            if argv0 in OUR_PROGRAMS:
                os.killpg(pid, signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass


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

    def __init__(self, paths, n, workdir, programs=None, logdir=None):
        """`programs`: [(name, {key: YAML value})], by default N programs of `sleep 100000` with
        their output discarded (`stdout: null`, `stderr: null`: without the keys the daemon
        captures). `n`: how many must be RUNNING for start() to return."""
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
        ]
        if logdir is not None:
            lines.append(f"  logdir: {yaml_str(str(logdir))}")
        lines.append("programs:")
        if programs is None:
            programs = [(f"p{index}", SLEEP_DISCARDED) for index in range(n)]
        for name, settings in programs:
            lines.append(f"  {name}:")
            lines += [f"    {key}: {value}" for key, value in settings.items()]
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
        # The daemon may refuse its configuration and exit: then the waiter would wait forever.
        deadline = time.monotonic() + 900
        while True:
            try:
                out, _ = waiter.communicate(timeout=0.05)
                break
            except subprocess.TimeoutExpired:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                waiter.kill()
                waiter.communicate()
                why = (self.dir / "daemon.stderr").read_text(errors="replace").strip()
                what = (f"exited {self.process.returncode}" if self.process.poll() is not None
                        else "timed out")
                raise RuntimeError(f"taskmasterd {what} before {self.n} programs were RUNNING: "
                                   f"{why[-400:]}")
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

    def status_during_restart(self):
        return run_json(self.tmbench("status-during-restart"), timeout=600)

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
        elif self.process is not None:
            kill_orphans(self.pids)


# ---------------------------------------------------------------------------------------------
# supervisord


class Supervisord:
    name = "supervisord"

    def __init__(self, paths, n, workdir, programs=None):
        """`programs`: [(name, {key: value})], by default N programs of `sleep 100000` with
        their output discarded. `n`: how many must be RUNNING for start() to return."""
        self.paths = paths
        self.n = n
        self.dir = workdir
        self.socket = workdir / "supervisor.sock"
        self.config = workdir / "supervisord.conf"
        self.process = None
        self.pids = []
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        # Three pipes a child; supervisord refuses to start below minfds.
        count = len(programs) if programs is not None else n
        minfds = min(hard, max(1024, 4 * count + 256)) if hard != -1 else 4 * count + 256
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
            f"minprocs={max(200, count + 256)}",
            "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "",
            "[supervisorctl]",
            f"serverurl=unix://{self.socket}",
        ]
        if programs is None:
            programs = [(f"p{index}", SD_SLEEP_DISCARDED) for index in range(n)]
        self.programs = len(programs)
        for name, settings in programs:
            sections += ["", f"[program:{name}]"]
            sections += [f"{key}={value}" for key, value in settings.items()]
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
            running = sum(1 for entry in info if entry["statename"] == "RUNNING")
            if len(info) == self.programs and running >= self.n:
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
        elif self.process is not None:
            kill_orphans(self.pids)


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

    def status_during_restart():
        # Status of every instance, back to back, while `restart all` is carried out.
        report = system.status_during_restart()
        samples = report["samples_ms"]
        figures["busy_status_p50_ms"] = median(samples)
        figures["busy_status_p99_ms"] = percentile(samples, 0.99)
        figures["busy_status_max_ms"] = max(samples)
        figures["busy_restart_all_ms"] = report["restart_ms"]
        figures["busy_status_samples_ms"] = samples

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
            step("busy_status_p50_ms", status_during_restart)
        step("hwm_end_mb", peak_memory)
        step("shutdown_ms", shutdown)
    finally:
        system.cleanup()
    return {"figures": figures, "errors": errors}


# ---------------------------------------------------------------------------------------------
# Output capture (issue 9): start-up and memory with capture on, throughput, many writers


# Sizes: the full run, and --quick (the smoke test).
CAPTURE_FULL = dict(bytes=10**9, rounds=3, programs=1000, line_secs=10.0, startups=3)
CAPTURE_QUICK = dict(bytes=10**7, rounds=1, programs=50, line_secs=2.0, startups=1)
# Rotation of the throughput run, the same for taskmasterd and supervisord (MB = 2^20 bytes in
# both).
ROTATE_MAXBYTES, ROTATE_BACKUPS = "100MB", 3
# The line writers: one line each every 10 ms.
LINE_INTERVAL_MS = 10
# The captured-by-default sleepers of the start-up and memory figures: no stdout/stderr key.
SLEEP_CAPTURED = {"cmd": "sleep 100000", "starttime": 0, "autorestart": "always"}


def stdout_kind(pid, fd=1):
    """What fd `fd` of `pid` is: "pipe" (read by the daemon: captured), "/dev/null"
    (discarded), "file" (the child writes the file itself), or what readlink says."""
    try:
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError as error:
        return f"unknown ({error.strerror})"
    if target.startswith("pipe:"):
        return "pipe"
    if target == "/dev/null":
        return target
    if target.startswith("/"):
        return "file"
    return target


def filesystem_of(path):
    """The type and mount point of the file system holding `path` (from /proc/mounts)."""
    path = os.path.realpath(path)
    best = ("?", "/")
    with open("/proc/mounts") as mounts:
        for line in mounts:
            fields = line.split()
            if len(fields) < 3:
                continue
            mount = fields[1].replace("\\040", " ")
            if (path == mount or path.startswith(mount.rstrip("/") + "/")) and \
                    len(mount) >= len(best[1]):
                best = (fields[2], mount)
    return f"{best[0]} at {best[1]}"


def tail_is_end(path):
    """Whether the file ends with the line "END" (after a timestamp, if any). An empty or
    missing file whose first rotated one ends so counts too (a rotation after the last line)."""
    path = Path(path)
    try:
        if path.stat().st_size == 0 and Path(f"{path}.1").exists():
            path = Path(f"{path}.1")
    except FileNotFoundError:
        if not Path(f"{path}.1").exists():
            return False
        path = Path(f"{path}.1")
    try:
        with open(path, "rb") as file:
            file.seek(0, os.SEEK_END)
            size = file.tell()
            file.seek(max(0, size - 64))
            tail = file.read()
    except FileNotFoundError:
        return False
    return tail.endswith(b"END\n") and (len(tail) == 4 or tail[-5:-4] in (b"\n", b" ", b"\t",
                                                                          b"]", b"|"))


def rotated_files(path, backups=10):
    """`path.N` ... `path.1`, `path` that exist, oldest first."""
    found = [Path(f"{path}.{index}") for index in range(backups, 0, -1)]
    return [file for file in found + [Path(path)] if file.exists()]


def drain_secs(nbytes):
    """How long a throughput run may take before it counts as failed: 5 MB/s, at least 60 s."""
    return max(60.0, nbytes / 5e6)


def yes_argv(nbytes):
    return ["sh", "-c", f"yes | head -c {nbytes}; echo END"]


def probe_capture(paths, base, log):
    """What this build of taskmasterd does with output: one daemon with a program without
    stdout/stderr keys (the default) and one with the mapping form; each child's fd 1 and 2
    are looked at. If the mapping form is refused, the probe runs again without it."""
    support = {}
    for with_mapping in (True, False):
        workdir = Path(tempfile.mkdtemp(prefix="tmbench-probe-", dir=base))
        (workdir / "logs").mkdir()
        programs = [("dflt", {"cmd": "sleep 100000", "starttime": 0})]
        if with_mapping:
            programs.append(("mapped", {
                "cmd": "sleep 100000", "starttime": 0,
                "stdout": "{path: %s, maxbytes: %s, backups: %d, timestamps: true}" % (
                    yaml_str(str(workdir / "mapped.log")), ROTATE_MAXBYTES, ROTATE_BACKUPS),
                "stderr": "null"}))
        daemon = Taskmasterd(paths, len(programs), workdir, programs, logdir=workdir / "logs")
        try:
            daemon.start()
            pids = {entry["name"]: entry["pid"] for entry in daemon.instances()}
            support["default_stdout"] = stdout_kind(pids["dflt"], 1)
            support["default_stderr"] = stdout_kind(pids["dflt"], 2)
            if with_mapping:
                support["mapping_stdout"] = stdout_kind(pids["mapped"], 1)
            daemon.shutdown()
        except Exception as error:
            if not with_mapping:
                raise
            reason = " ".join(str(error).split())[:300]
            support["mapping_stdout"] = f"refused ({reason})"
            log(f"  capture probe: the mapping form was refused: {reason}")
            continue
        finally:
            daemon.cleanup()
            shutil.rmtree(workdir, ignore_errors=True)
        break
    support["mapping"] = not support["mapping_stdout"].startswith("refused")
    support["captures"] = support["default_stdout"] == "pipe"
    return support


def capture_startups(paths, n, rounds, settle, log):
    """`rounds` of: the floor, then taskmasterd with N `sleep 100000` whose output is captured
    by default (no stdout/stderr key; daemon.logdir in the work folder), up, left to settle,
    its memory read, shut down. Returns (floor runs, figures, errors)."""
    floors, startups, rss, shutdowns, figures = [], [], [], [], {}
    for cycle in range(rounds):
        log(f"  floor and taskmasterd start-up with capture on, round {cycle + 1} of {rounds}")
        floors.append(run_floor(paths, n))
        workdir = Path(tempfile.mkdtemp(prefix=f"tmbench-capture-startup-{n}-"))
        (workdir / "logs").mkdir()
        programs = [(f"p{index}", SLEEP_CAPTURED) for index in range(n)]
        daemon = Taskmasterd(paths, n, workdir, programs, logdir=workdir / "logs")
        try:
            startups.append(daemon.start())
            pid = daemon.process.pid
            time.sleep(settle)
            wait_quiet(pid)
            rss.append(proc_status(pid)["VmRSS"])
            figures["fds_capture"] = len(os.listdir(f"/proc/{pid}/fd"))
            figures["capture_stdout"] = stdout_kind(daemon.pids[0]) if daemon.pids else "?"
            figures["capture_log_files"] = len(os.listdir(workdir / "logs"))
            shutdowns.append(daemon.shutdown())
            survivors = [child for child in daemon.pids if alive(child)]
            if survivors:
                for child in survivors:
                    os.kill(child, signal.SIGKILL)
                raise RuntimeError(f"{len(survivors)} programs still alive after shutdown")
        finally:
            daemon.cleanup()
            shutil.rmtree(workdir, ignore_errors=True)
    figures.update({
        "startup_capture_ms": median(startups), "startup_capture_samples_ms": startups,
        "rss_capture_mb": median(rss), "rss_capture_samples_mb": rss,
        "shutdown_capture_ms": median(shutdowns),
    })
    return floors, figures


def wait_drained(daemon, logs, deadline, what):
    """Waits until the daemon has no live child and every file in `logs` ends with END."""
    daemon_pid = daemon.process.pid
    while True:
        check_alive(daemon, what)
        if all(tail_is_end(path) for path in logs) and \
                not any(alive(child) for child in children(daemon_pid)):
            return now_ns()
        if time.monotonic() > deadline:
            done = sum(1 for path in logs if tail_is_end(path))
            raise RuntimeError(f"{what}: not complete in time ({done} of {len(logs)} files "
                               f"end with END; children alive: "
                               f"{sum(1 for c in children(daemon_pid) if alive(c))})")
        time.sleep(0.002)


def check_alive(daemon, what):
    """Raises if the daemon has exited (a crash in the middle of a measurement)."""
    if daemon.process.poll() is not None:
        raise RuntimeError(f"{what}: {daemon.name} exited ({daemon.process.returncode}) in the "
                           f"middle of the measurement; see {daemon.dir / 'daemon.stderr'}")


def throughput_floor(nbytes, workdir):
    """The shell command with its stdout on a file, started by the driver: spawn → exit."""
    target = workdir / "direct.log"
    os.sync()
    with open(target, "wb") as out:
        started = now_ns()
        process = subprocess.Popen(yes_argv(nbytes), stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        exited = wait_exit(process, timeout=900)
        if exited is None:
            raise RuntimeError("the direct write did not finish in 900 s")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    size = target.stat().st_size
    if not tail_is_end(target):
        raise RuntimeError(f"the direct write's file does not end with END ({size} bytes)")
    target.unlink()
    return (exited - started) / 1e9


def throughput_taskmasterd(paths, nbytes, base, timestamps, mapping):
    """One program writing `nbytes` of `yes` to a captured, rotating stdout, started with
    `taskctl start` once the daemon is idle: (wall s from the start request to the program
    exited and its file complete, the daemon's CPU s over that, notes)."""
    workdir = Path(tempfile.mkdtemp(prefix="tmbench-throughput-", dir=base))
    log_path = workdir / "out.log"
    if mapping:
        stdout = "{path: %s, maxbytes: %s, backups: %d, timestamps: %s}" % (
            yaml_str(str(log_path)), ROTATE_MAXBYTES, ROTATE_BACKUPS,
            "true" if timestamps else "false")
    else:  # this build refuses the mapping: a plain path (no rotation options)
        stdout = yaml_str(str(log_path))
    settings = {"cmd": yaml_str(shlex.join(yes_argv(nbytes))), "autostart": "false",
                "autorestart": "never", "starttime": 0, "stdout": stdout, "stderr": "null"}
    daemon = Taskmasterd(paths, 0, workdir, [("out", settings)], logdir=workdir / "logs")
    try:
        daemon.start()
        pid = daemon.process.pid
        os.sync()
        wait_quiet(pid)
        ticks = cpu_ticks(pid)
        started = now_ns()
        asked = subprocess.run([str(paths.taskctl), "-s", str(daemon.socket), "start", "out"],
                               capture_output=True, text=True, timeout=120)
        kind = None
        for child in children(pid):
            kind = stdout_kind(child)
        done = wait_drained(daemon, [log_path], time.monotonic() + drain_secs(nbytes),
                            "taskmasterd throughput")
        wait_quiet(pid, timeout=5)
        cpu_s = (cpu_ticks(pid) - ticks) / os.sysconf("SC_CLK_TCK")
        files = rotated_files(log_path)
        notes = {"stdout": kind, "files": len(files),
                 "kept_bytes": sum(file.stat().st_size for file in files)}
        if asked.returncode != 0:
            notes["taskctl_start"] = f"exit {asked.returncode}: {asked.stderr.strip()[:200]}"
        daemon.shutdown()
    finally:
        daemon.cleanup()
    shutil.rmtree(workdir, ignore_errors=True)
    return (done - started) / 1e9, cpu_s, notes


def throughput_supervisord(paths, nbytes, base):
    """The same under supervisord: `stdout_logfile`, the same rotation, startProcess over
    XML-RPC once supervisord is idle."""
    workdir = Path(tempfile.mkdtemp(prefix="sdbench-throughput-", dir=base))
    log_path = workdir / "out.log"
    settings = {"command": shlex.join(yes_argv(nbytes)), "autostart": "false",
                "autorestart": "false", "startsecs": 0, "stdout_logfile": str(log_path),
                "stdout_logfile_maxbytes": ROTATE_MAXBYTES,
                "stdout_logfile_backups": ROTATE_BACKUPS, "stderr_logfile": "NONE"}
    daemon = Supervisord(paths, 0, workdir, [("out", settings)])
    try:
        daemon.start()
        pid = daemon.process.pid
        proxy = daemon.rpc()
        os.sync()
        wait_quiet(pid)
        ticks = cpu_ticks(pid)
        started = now_ns()
        proxy.supervisor.startProcess("out", False)
        done = wait_drained(daemon, [log_path], time.monotonic() + drain_secs(nbytes),
                            "supervisord throughput")
        wait_quiet(pid, timeout=5)
        cpu_s = (cpu_ticks(pid) - ticks) / os.sysconf("SC_CLK_TCK")
        files = rotated_files(log_path)
        notes = {"files": len(files), "kept_bytes": sum(file.stat().st_size for file in files)}
        daemon.shutdown()
    finally:
        daemon.cleanup()
    shutil.rmtree(workdir, ignore_errors=True)
    return (done - started) / 1e9, cpu_s, notes


def read_sequence(path):
    """The line numbers in `path` and its rotated files, oldest first ("line K", after a
    timestamp, if any), and the N of an "end N" line (or None)."""
    seqs, end = [], None
    for file in rotated_files(path):
        with open(file, "rb") as lines:
            for line in lines:
                words = line.split()
                if len(words) >= 2 and words[-1].isdigit():
                    if words[-2] == b"line":
                        seqs.append(int(words[-1]))
                    elif words[-2] == b"end":
                        end = int(words[-1])
    return seqs, end


def check_lines(names, logs, counts):
    """Compares what each writer says it wrote (its count file) with the line numbers in its
    files: every number from 1 to the count must be there once."""
    lost = duplicated = reordered = uncounted = written = received = skipped = 0
    worst = []
    for name in names:
        seqs, _ = read_sequence(logs / f"{name}.out.log")
        try:
            words = (counts / name).read_text().split()
            count = int(words[0])
            skipped += int(words[1]) if len(words) > 1 else 0
        except (FileNotFoundError, ValueError, IndexError):
            uncounted += 1
            count = max(seqs, default=0)
        present = {seq for seq in seqs if 1 <= seq <= count}
        missing = count - len(present)
        lost += missing
        duplicated += len(seqs) - len(set(seqs))
        reordered += sum(1 for a, b in zip(seqs, seqs[1:]) if b < a)
        written += count
        received += len(seqs)
        if missing:
            worst.append((missing, name))
    worst.sort(reverse=True)
    return {"lines_lost": lost, "lines_written": written, "lines_received": received,
            "lines_duplicated": duplicated, "lines_reordered": reordered,
            "writers_uncounted": uncounted,
            "ticks_skipped_pct": 100 * skipped / (written + skipped) if written + skipped else 0.0,
            "worst": [f"{name}: {missing} lost"
                                                      for missing, name in worst[:5]]}


def line_rate(system_class, paths, programs, secs, settle, base, support, log):
    """`programs` writers of one line every 10 ms, each to its own captured stdout; the
    daemon's CPU (% of one core) over `secs` and its VmRSS (sampled every 0.25 s, the peak);
    then every program is stopped through the daemon (the writers write "end N" and their
    count on SIGTERM), the files are left to drain and every sequence is checked."""
    prefix = "tmbench" if system_class is Taskmasterd else "sdbench"
    workdir = Path(tempfile.mkdtemp(prefix=f"{prefix}-lines-", dir=base))
    logs, counts = workdir / "logs", workdir / "counts"
    logs.mkdir()
    counts.mkdir()
    names = [f"p{index}" for index in range(programs)]
    figures = {}
    if system_class is Taskmasterd:
        specs = []
        for name in names:
            settings = {"cmd": yaml_str(shlex.join([str(paths.ticker), str(LINE_INTERVAL_MS),
                                                    str(counts / name)])),
                        "starttime": 0, "autorestart": "never"}
            if not support.get("captures"):
                # This build does not capture by default: the same files, written by the child.
                settings["stdout"] = yaml_str(str(logs / f"{name}.out.log"))
                settings["stderr"] = "null"
            specs.append((name, settings))
        daemon = Taskmasterd(paths, programs, workdir, specs, logdir=logs)
    else:
        specs = [(name, {"command": shlex.join([str(paths.ticker), str(LINE_INTERVAL_MS),
                                                str(counts / name)]),
                         "startsecs": 0, "autorestart": "false",
                         "stdout_logfile": str(logs / f"{name}.out.log"),
                         "stdout_logfile_maxbytes": "10MB", "stdout_logfile_backups": 5,
                         "stderr_logfile": "NONE", "stopwaitsecs": 30})
                 for name in names]
        daemon = Supervisord(paths, programs, workdir, specs)
    try:
        daemon.start()
        pid = daemon.process.pid
        figures["lines_stdout"] = stdout_kind(daemon.pids[0]) if daemon.pids else "?"
        time.sleep(settle)
        busy = machine_busy_ticks()
        ticks, started = cpu_ticks(pid), time.monotonic()
        peak = 0.0
        while time.monotonic() - started < secs:
            check_alive(daemon, f"{daemon.name} writers")
            peak = max(peak, proc_status(pid)["VmRSS"])
            time.sleep(0.25)
        elapsed = time.monotonic() - started
        figures["lines_cpu_pct"] = ((cpu_ticks(pid) - ticks) / os.sysconf("SC_CLK_TCK")
                                    / elapsed * 100)
        figures["machine_busy_pct"] = ((machine_busy_ticks() - busy) / os.sysconf("SC_CLK_TCK")
                                       / (elapsed * (os.cpu_count() or 1)) * 100)
        figures["lines_rss_mb"] = max(peak, proc_status(pid)["VmRSS"])
        figures["lines_secs"] = elapsed
        figures["lines_programs"] = programs
        log(f"  {daemon.name}: stopping {programs} writers")
        if system_class is Taskmasterd:
            stopped = subprocess.run([str(paths.taskctl), "-s", str(daemon.socket), "stop",
                                      "all"], capture_output=True, text=True, timeout=600)
            if stopped.returncode != 0:
                figures["lines_stop"] = f"exit {stopped.returncode}: {stopped.stderr[:200]}"
        else:
            daemon.rpc().supervisor.stopAllProcesses(True)
        try:
            wait_drained(daemon, [], time.monotonic() + 120, f"{daemon.name} writers")
            # Lines still in flight: give the files up to 10 s to show every writer's end.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if all(read_sequence(logs / f"{name}.out.log")[1] is not None
                       for name in names):
                    break
                time.sleep(0.1)
        except RuntimeError as error:
            figures["lines_stop"] = str(error)
        figures.update(check_lines(names, logs, counts))
        daemon.shutdown()
    finally:
        daemon.cleanup()
    shutil.rmtree(workdir, ignore_errors=True)
    return figures


def measure_capture(paths, sizes, sd_enabled, settle, log):
    """The N-independent capture figures: throughput (floor, taskmasterd with and without
    timestamps, supervisord) and the many-writers load; each step's failure is recorded."""
    base = Path(paths.capture_dir) if paths.capture_dir else None
    if base is not None:
        base.mkdir(parents=True, exist_ok=True)
    where = base or Path(tempfile.gettempdir())
    result = {"sizes": dict(sizes), "filesystem": filesystem_of(where), "dir": str(where),
              "floor": {"figures": {}, "errors": {}},
              "taskmasterd": {"figures": {}, "errors": {}}}
    if sd_enabled:
        result["supervisord"] = {"figures": {}, "errors": {}}

    def step(who, key, action):
        log(f"  capture: {who} {key}")
        try:
            action()
        except Exception as error:  # recorded, reported, and the run goes on
            result[who]["errors"][key] = f"{type(error).__name__}: {error}"
            traceback.print_exc()

    support = {}

    def probe():
        support.update(probe_capture(paths, base, log))
        result["support"] = support

    step("taskmasterd", "probe", probe)
    nbytes = sizes["bytes"]
    gb = nbytes / 1e9
    samples = {"floor": [], "tm": [], "tm_ts": [], "sd": []}
    cpu = {"tm": [], "tm_ts": [], "sd": []}
    notes = {}
    for round_ in range(sizes["rounds"]):
        log(f"  capture: throughput round {round_ + 1} of {sizes['rounds']} "
            f"({nbytes / 1e6:,.0f} MB)")
        workdir = Path(tempfile.mkdtemp(prefix="tmbench-direct-", dir=base))
        try:
            step("floor", "throughput_s",
                 lambda: samples["floor"].append(throughput_floor(nbytes, workdir)))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        for key, timestamps in (("tm", False), ("tm_ts", True)):
            def one(key=key, timestamps=timestamps):
                wall, cpu_s, note = throughput_taskmasterd(
                    paths, nbytes, base, timestamps, support.get("mapping", False))
                samples[key].append(wall)
                cpu[key].append(cpu_s)
                notes[key] = note
            step("taskmasterd", "throughput_ts_s" if timestamps else "throughput_s", one)
        if sd_enabled:
            def sd_one():
                wall, cpu_s, note = throughput_supervisord(paths, nbytes, base)
                samples["sd"].append(wall)
                cpu["sd"].append(cpu_s)
                notes["sd"] = note
            step("supervisord", "throughput_s", sd_one)
    floor = result["floor"]["figures"]
    tm = result["taskmasterd"]["figures"]
    floor["throughput_s"] = median(samples["floor"])
    floor["throughput_samples_s"] = samples["floor"]
    for key, suffix in (("tm", ""), ("tm_ts", "_ts")):
        tm[f"throughput{suffix}_s"] = median(samples[key])
        tm[f"throughput{suffix}_samples_s"] = samples[key]
        tm[f"cpu_per_gb{suffix}_s"] = median([c / gb for c in cpu[key]]) if cpu[key] else None
        tm[f"throughput{suffix}_notes"] = notes.get(key)
        if tm[f"throughput{suffix}_s"] and floor["throughput_s"]:
            tm[f"speed{suffix}"] = floor["throughput_s"] / tm[f"throughput{suffix}_s"]
    if sd_enabled:
        sd = result["supervisord"]["figures"]
        sd["throughput_s"] = median(samples["sd"])
        sd["throughput_samples_s"] = samples["sd"]
        sd["cpu_per_gb_s"] = median([c / gb for c in cpu["sd"]]) if cpu["sd"] else None
        sd["throughput_notes"] = notes.get("sd")
        if sd["throughput_s"] and floor["throughput_s"]:
            sd["speed"] = floor["throughput_s"] / sd["throughput_s"]

    systems = [("taskmasterd", Taskmasterd)] + ([("supervisord", Supervisord)]
                                                if sd_enabled else [])
    for who, system_class in systems:
        step(who, "lines_lost", lambda system_class=system_class, who=who:
             result[who]["figures"].update(line_rate(
                 system_class, paths, sizes["programs"], sizes["line_secs"], settle, base,
                 support, log)))
    result["targets"] = check_capture_targets(result)
    return result


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
    ("startup_capture_ms", "start-up, output captured (default files): launch → all N RUNNING (ms)",
     "≤ 1.5× floor",
     lambda tm, sd, floor: tm["startup_capture_ms"] <= 1.5 * floor["spawn_ms"]),
    ("rss_capture_mb", "daemon VmRSS with N idle captured programs (MB)",
     "≤ 2× VmRSS discarded",
     lambda tm, sd, floor: tm["rss_capture_mb"] <= 2 * tm["rss_mb"]),
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
    ("busy_restart_all_ms", "`restart all`: request → every instance RUNNING again (ms)", "",
     None),
    ("busy_status_p50_ms", "status of all during `restart all`, p50 (ms)", "", None),
    ("busy_status_p99_ms", "status of all during `restart all`, p99 (ms)", "< 20 ms",
     lambda tm, sd, floor: tm["busy_status_p99_ms"] < 20),
    ("busy_status_max_ms", "status of all during `restart all`, max (ms)", "", None),
]

# The capture figures that do not depend on N (see measure_capture): (key, label, target,
# check(taskmasterd, supervisord, floor figures) -> bool, checked at which size: "bytes" or
# "programs" must be the full run's).
CAPTURE_ROWS = [
    ("throughput_s", "{size} of `yes` to a captured, rotating stdout: start → exited and file "
     "complete (s)", "speed ≥ 0.9× the direct write",
     lambda tm, sd, floor: floor["throughput_s"] / tm["throughput_s"] >= 0.9, "bytes"),
    ("throughput_ts_s", "the same with timestamps (s)", "", None, "bytes"),
    ("cpu_per_gb_s", "daemon CPU per captured GB (s)", "≤ ⅓ of supervisord's",
     lambda tm, sd, floor: tm["cpu_per_gb_s"] <= sd["cpu_per_gb_s"] / 3, "bytes"),
    ("cpu_per_gb_ts_s", "daemon CPU per captured GB, with timestamps (s)",
     "≤ ⅓ of supervisord's (it has no timestamps)",
     lambda tm, sd, floor: tm["cpu_per_gb_ts_s"] <= sd["cpu_per_gb_s"] / 3, "bytes"),
    ("lines_cpu_pct", "{programs} programs × 1 line / 10 ms: daemon CPU (% of one core)", "",
     None, "programs"),
    ("lines_rss_mb", "{programs} programs × 1 line / 10 ms: daemon VmRSS, peak (MB)", "", None,
     "programs"),
    ("lines_lost", "{programs} programs × 1 line / 10 ms: lines lost", "0",
     lambda tm, sd, floor: tm["lines_lost"] == 0, "programs"),
]


def check_capture_targets(result):
    """{key: True/False/None} for the capture targets, at the full sizes only."""
    tm = result.get("taskmasterd", {}).get("figures", {})
    sd = result.get("supervisord", {}).get("figures", {})
    floor = result.get("floor", {}).get("figures", {})
    sizes = result.get("sizes", {})
    full = {"bytes": sizes.get("bytes", 0) >= CAPTURE_FULL["bytes"],
            "programs": sizes.get("programs", 0) >= CAPTURE_FULL["programs"]}
    verdicts = {}
    for key, _, _, check, size in CAPTURE_ROWS:
        if check is None or not full[size]:
            continue
        try:
            verdicts[key] = bool(check(tm, sd, floor))
        except (KeyError, TypeError, ZeroDivisionError):
            verdicts[key] = None
    return verdicts


def capture_markdown(capture):
    """The table of the N-independent capture figures."""
    tm = capture.get("taskmasterd", {}).get("figures", {})
    sd = capture.get("supervisord", {}).get("figures", {})
    floor = capture.get("floor", {}).get("figures", {})
    sizes = capture.get("sizes", {})
    verdicts = capture.get("targets", {})
    size = f"{sizes.get('bytes', 0) / 1e9:g} GB" if sizes.get("bytes", 0) >= 1e9 else \
        f"{sizes.get('bytes', 0) / 1e6:g} MB"
    lines = ["## Output capture", "",
             f"Files on {capture.get('filesystem', '?')} ({capture.get('dir')}), the same for "
             f"the direct write, taskmasterd and supervisord. Rotation: maxbytes "
             f"{ROTATE_MAXBYTES}, backups {ROTATE_BACKUPS} for both daemons; "
             f"{sizes.get('rounds')} round(s), medians. Writers: {sizes.get('programs')} "
             f"programs for {sizes.get('line_secs', 0):g} s.", "",
             "| metric | direct write | taskmasterd | supervisord | supervisord ÷ taskmasterd "
             "| target | met |",
             "|---|---:|---:|---:|---:|---|:-:|"]
    for key, label, target, _, _ in CAPTURE_ROWS:
        label = label.format(size=size, programs=sizes.get("programs"))
        floor_text = ""
        tm_text, sd_text = fmt(tm.get(key)), fmt(sd.get(key)) if sd else "—"
        if key in ("throughput_s", "throughput_ts_s"):
            floor_text = f"{fmt(floor.get('throughput_s'))} (`> file`)"
            speed = tm.get("speed" if key == "throughput_s" else "speed_ts")
            if speed is not None:
                tm_text += f" ({speed:.2f}× direct speed)"
            if key == "throughput_s" and sd.get("speed") is not None:
                sd_text += f" ({sd['speed']:.2f}× direct speed)"
            if key == "throughput_ts_s" and sd:
                sd_text = "n/a"
        if key == "cpu_per_gb_ts_s" and sd:
            sd_text = "n/a"
        met = verdicts.get(key)
        met_text = "" if key not in verdicts else {True: "✅", False: "❌", None: "?"}[met]
        shown_ratio = ratio(sd.get(key), tm.get(key)) if key in sd and key in tm else "—"
        lines.append(f"| {label} | {floor_text} | {tm_text} | {sd_text} | {shown_ratio} | "
                     f"{target} | {met_text} |")
    support = capture.get("support", {})
    if support:
        captured = support.get("captures")
        lines += ["", f"This taskmasterd build: a child's stdout without a `stdout` key is "
                  f"`{support.get('default_stdout')}` (stderr `{support.get('default_stderr')}`),"
                  f" with the mapping form `{support.get('mapping_stdout')}`."]
        if not captured:
            lines.append("**It does not capture output**: the throughput run used "
                         + ("the mapping form" if support.get("mapping") else
                            "a plain `stdout: FILE` (the mapping was refused)")
                         + " and the writers a plain `stdout: FILE` per program, which the "
                         "child writes itself, so these taskmasterd figures do not measure "
                         "capture.")
    lines.append("")
    for who in ("taskmasterd", "supervisord"):
        figures = capture.get(who, {}).get("figures", {})
        if "lines_written" in figures:
            lines.append(f"- {who} writers: {figures['lines_written']:,} lines written, "
                         f"{figures['lines_received']:,} found in the files, "
                         f"{figures['lines_lost']:,} lost, {figures['lines_duplicated']} "
                         f"duplicated, {figures['lines_reordered']} out of order, "
                         f"{figures['writers_uncounted']} writers without a count; "
                         f"{figures.get('ticks_skipped_pct', 0):.1f}% of the ticks missed by "
                         f"late writers; the machine {figures.get('machine_busy_pct', 0):.0f}% "
                         f"busy over the window; the children's stdout: "
                         f"`{figures.get('lines_stdout')}`"
                         + (f"; worst: {', '.join(figures['worst'])}" if figures.get("worst")
                            else "") + ".")
        for suffix, what in (("", ""), ("_ts", " with timestamps")):
            notes = figures.get(f"throughput{suffix}_notes")
            if notes:
                lines.append(f"- {who} throughput{what}: "
                             + ", ".join(f"{key} {value}" for key, value in notes.items())
                             + ".")
    errors = {f"{who} {key}": value for who in ("floor", "taskmasterd", "supervisord")
              for key, value in capture.get(who, {}).get("errors", {}).items()}
    if errors:
        lines += ["", "Not measured or failed:", ""]
        lines += [f"- {key}: {value}" for key, value in errors.items()]
    if capture.get("elapsed_s"):
        share = capture["stolen_s"] / (capture["elapsed_s"] * (os.cpu_count() or 1))
        lines += ["", f"CPU stolen by the hypervisor during the capture figures: "
                  f"{capture['stolen_s']:.1f} s over {capture['elapsed_s']:.0f} s "
                  f"({share:.1%} of the machine)"
                  + (": other guests disturbed these figures." if share > 0.02 else ".")]
    if verdicts:
        lines += ["", f"Capture targets: {sum(1 for v in verdicts.values() if v)} of "
                  f"{len(verdicts)} met."]
    else:
        lines += ["", "Capture targets are checked at the full sizes (1 GB, 1000 programs)."]
    lines.append("")
    return lines


def curve_markdown(results):
    """Start-up with capture on against the floor, per N: ms per spawn and the ratio."""
    lines = ["## Start-up with capture on, by N", "",
             "| N | floor (ms/spawn) | captured (ms/spawn) | captured ÷ floor | discarded "
             "(ms/spawn) | discarded ÷ floor | daemon fds, captured |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for n, result in results.items():
        n = int(n)
        tm = result.get("taskmasterd", {}).get("figures", {})
        floor = result.get("floor", {}).get("spawn_ms")

        def per(value):
            return fmt(value / n) if value is not None else "—"

        lines.append(f"| {n} | {per(floor)} | {per(tm.get('startup_capture_ms'))} | "
                     f"{ratio(tm.get('startup_capture_ms'), floor)} | "
                     f"{per(tm.get('startup_ms'))} | {ratio(tm.get('startup_ms'), floor)} | "
                     f"{fmt(tm.get('fds_capture'))} |")
    lines.append("")
    return lines


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


def markdown(results, meta, capture=None):
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
            if key in ("startup_ms", "startup_capture_ms"):
                floor_text = f"{fmt(floor.get('spawn_ms'))} (posix_spawn ×N)"
                if tm.get(key) is not None and floor.get("spawn_ms"):
                    tm_text += f" ({ratio(tm[key], floor['spawn_ms'])} floor)"
                if sd.get(key) is not None and floor.get("spawn_ms"):
                    sd_text += f" ({ratio(sd[key], floor['spawn_ms'])} floor)"
            if key == "shutdown_ms":
                floor_text = f"{fmt(floor.get('stop_ms'))} (SIGTERM + reap ×N)"
            if key.endswith("_capture_mb") or key.endswith("_capture_ms"):
                sd_text = "—"
            if (key.startswith("events_") or key.startswith("busy_")) and not sd:
                sd_text = "—"
            elif key.startswith("events_") or key.startswith("busy_"):
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
        if tm.get("capture_stdout"):
            lines += ["", f"Start-up with capture on: {tm.get('capture_log_files')} files in the "
                      f"log folder, {tm.get('fds_capture')} open file descriptors in the daemon, "
                      f"a child's stdout is `{tm['capture_stdout']}`"
                      + (" (**not captured: this build does not capture by default**)."
                         if tm["capture_stdout"] != "pipe" else ".")]
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
    if any("startup_capture_ms" in result.get("taskmasterd", {}).get("figures", {})
           for result in results.values()):
        lines += curve_markdown(results)
    if capture:
        lines += capture_markdown(capture)
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
    parser.add_argument("--ticker", required=True, help="the line writer (bench/ticker.c)")
    parser.add_argument("--skip-capture", action="store_true",
                        help="leave out the output capture figures")
    parser.add_argument("--capture-only", action="store_true",
                        help="only the N-independent capture figures (no per-N tables)")
    parser.add_argument("--capture-dir", help="where the capture runs write their files "
                        "(default: the temporary folder; e.g. /dev/shm for a tmpfs)")
    parser.add_argument("--capture-bytes", type=int, help="bytes of the throughput run "
                        "(default 1000000000, --quick 10000000)")
    parser.add_argument("--capture-programs", type=int, help="writers of the line-rate run "
                        "(default 1000, --quick 50)")
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
    if args.skip_capture and args.capture_only:
        parser.error("--skip-capture and --capture-only exclude each other")
    if args.venv:
        args.supervisord = Path(args.venv) / "bin" / "supervisord"
        args.supervisorctl = Path(args.venv) / "bin" / "supervisorctl"
    elif args.supervisord_ns:
        parser.error("--venv is needed unless supervisord is skipped")
    return args


def rewrite_table(out):
    """Writes results.md again from results.json (after a change to the table's layout)."""
    saved = json.loads((out / "results.json").read_text())
    table = markdown(saved["results"], saved["meta"], saved.get("capture"))
    (out / "results.md").write_text(table)
    print(table)


def main():
    # A SIGTERM (a test harness's timeout, a Ctrl-C'd bench/run) unwinds like an exception, so
    # every `finally` stops the daemons and programs it started.
    signal.signal(signal.SIGTERM, lambda signo, frame: sys.exit(128 + signo))
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
    sizes = dict(CAPTURE_QUICK if args.quick else CAPTURE_FULL)
    if args.capture_bytes:
        sizes["bytes"] = args.capture_bytes
    if args.capture_programs:
        sizes["programs"] = args.capture_programs
    if not args.skip_capture:
        meta["reps"] += ", capture: " + ", ".join(f"{key}={value}" for key, value in sizes.items())
    results = {}
    capture = None

    def save():
        # Written after each step, so a long run that is cut short keeps what it measured.
        saved = {"meta": meta, "results": results}
        if capture is not None:
            saved["capture"] = capture
        (out / "results.json").write_text(json.dumps(saved, indent=2))

    for n in [] if args.capture_only else args.ns:
        log(f"N = {n}")
        steal_before, started = stolen_ticks(), time.monotonic()
        capture_figures, capture_errors = {}, {}
        try:
            floors, startups, shutdowns = startup_cycles(args, n, reps["startups"] - 1, log)
        except Exception as error:  # the last round, in measure(), reports it again
            floors, startups, shutdowns = [], [], []
            capture_errors["startup_rounds"] = f"{type(error).__name__}: {error}"
            traceback.print_exc()
        if not args.skip_capture:
            try:
                capture_floors, capture_figures = capture_startups(
                    args, n, sizes["startups"], reps["settle_secs"], log)
                floors += capture_floors
            except Exception as error:  # recorded, reported, and the run goes on
                capture_errors["startup_capture_ms"] = f"{type(error).__name__}: {error}"
                traceback.print_exc()
        floors.append(run_floor(args, n))
        result = {"floor": summarize_floor(floors)}
        systems = [Taskmasterd] + ([Supervisord] if n in args.supervisord_ns else [])
        for system_class in systems:
            workdir = Path(tempfile.mkdtemp(prefix=f"tmbench-{system_class.name}-{n}-"))
            system = system_class(args, n, workdir)
            if system_class is Taskmasterd:
                result[system.name] = measure(system, reps, log, startups, shutdowns)
                result[system.name]["figures"].update(capture_figures)
                result[system.name]["errors"].update(capture_errors)
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
        save()
    if not args.skip_capture:
        log("Output capture")
        steal_before, started = stolen_ticks(), time.monotonic()
        capture = measure_capture(args, sizes, bool(args.supervisord_ns), reps["settle_secs"],
                                  log)
        capture["stolen_s"] = (stolen_ticks() - steal_before) / os.sysconf("SC_CLK_TCK")
        capture["elapsed_s"] = time.monotonic() - started
        save()
    table = markdown(results, meta, capture)
    (out / "results.md").write_text(table)
    print(table)
    failed = any(system.get("errors") for result in results.values()
                 for name, system in result.items() if name in ("taskmasterd", "supervisord"))
    if capture is not None:
        failed = failed or any(capture.get(who, {}).get("errors")
                               for who in ("floor", "taskmasterd", "supervisord"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
