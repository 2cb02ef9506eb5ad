"""Several sites on one machine, for tests and benchmarks that need a real network between processes.

Each site is a network namespace with one veth link to a bridge in a switch namespace of its own (nothing
touches the host's interfaces), an address from 198.18.0.0/15 and the other sites' names in its
/etc/netns/NS/hosts. Links can be shaped (tbf, both ends), made lossy or cut (nftables on the bridge), and
inbound TCP can be delayed (this kernel has no netem: a delaying relay, sites/relay.py). Without the rights
to make namespaces, the same API runs the sites on 127.x.y.z loopback addresses and the network-changing
methods raise NeedsNamespaces.

    with Sites(["hub", "a", "b"], rate="1gbit") as sites:
        srv = sites.spawn("a", ["nginx", ...], log=path)
        sites.set_loss("a", 2.0); sites.delay("a", 20); sites.cut("a"); sites.heal("a")
        sites.run("b", ["curl", f"http://{sites.addr('a')}/x"])
        sites.counters("hub")

CLI: python sites/kit.py up|down|clean|status (see --help).
"""

from __future__ import annotations

import argparse
import atexit
import ctypes
import dataclasses
import ipaddress
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import typing as t
from pathlib import Path

HERE = Path(__file__).resolve().parent
RELAY = HERE / "relay.py"
NS_PREFIX = "fsk-"  # every namespace the kit makes: fsk-<tag> (the switch) and fsk-<tag>-<site>
STATE_DIR = Path("/run/ferry-sites")  # one JSON per run: who owns it, its sites, their link settings
NETWORK = ipaddress.ip_network("198.18.0.0/15")  # RFC 2544's benchmarking range
DEV = "eth0"  # the site's end of its link
RELAY_PORT = 61999  # where a site's delaying relay listens; never redirected to itself
CMD_TIMEOUT = 30.0  # any one ip/tc/nft command
SITE_NAME = re.compile(r"^[a-z][a-z0-9]{0,15}$")
Socket = socket.socket  # the method Sites.socket shadows the module's name inside the class


@dataclasses.dataclass
class Link:
    """What is set on one site's link."""

    rate: str | None = None  # tbf rate, tc syntax; None: unshaped
    loss: float = 0.0  # percent of packets dropped, each direction
    cut: bool = False
    delay: float = 0.0  # ms added each way to TCP connections into the site


class NeedsNamespaces(RuntimeError):
    """Raised by what only a namespace can do (shaping, loss, cut, delay, counters) in loopback mode."""


def sh(argv: t.Sequence[str], *, input: str | None = None, check: bool = True,
       timeout: float = CMD_TIMEOUT) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(a) for a in argv], input=input, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"$ {' '.join(map(str, argv))}\nexit {proc.returncode}: {proc.stderr.strip()}")
    return proc


_NETNS_PROBE: tuple[bool, str] | None = None


def namespaces_available() -> tuple[bool, str]:
    """Whether this process can make network namespaces, and why not (cached: it makes one to find out)."""
    global _NETNS_PROBE
    if _NETNS_PROBE is None:
        if shutil.which("ip") is None:
            _NETNS_PROBE = (False, "needs namespaces: `ip` (iproute2) is not installed")
        elif os.geteuid() != 0:
            _NETNS_PROBE = (False, "needs namespaces: not root (CAP_NET_ADMIN and CAP_SYS_ADMIN)")
        else:
            probe = f"{NS_PREFIX}probe{os.getpid()}"
            made = sh(["ip", "netns", "add", probe], check=False)
            sh(["ip", "netns", "del", probe], check=False)
            _NETNS_PROBE = (made.returncode == 0, f"needs namespaces: `ip netns add` failed: {made.stderr.strip()}")
    return _NETNS_PROBE


class Proc:
    """A process started in a site; its own process group, so kill() reaches its children too."""

    def __init__(self, popen: subprocess.Popen[bytes], site: str, argv: list[str], log: Path | None) -> None:
        self.popen, self.site, self.argv, self.log = popen, site, argv, log

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self, sig: int = signal.SIGTERM) -> None:
        if self.alive():
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float | None = None) -> int:
        return self.popen.wait(timeout)

    def stop(self, grace: float = 3.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds."""
        self.kill(signal.SIGTERM)
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            self.kill(signal.SIGKILL)
            self.popen.wait(grace)

    def __repr__(self) -> str:
        return f"<Proc {self.pid} at {self.site}: {' '.join(self.argv)[:60]}>"


class _Libc:
    """setns(2), to open sockets inside a namespace from this process (os.setns is Python 3.12+)."""

    CLONE_NEWNET = 0x40000000
    _lib: t.Any = None

    @classmethod
    def setns(cls, fd: int) -> None:
        if cls._lib is None:
            cls._lib = ctypes.CDLL(None, use_errno=True)
        if cls._lib.setns(fd, cls.CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))


class Sites:
    """A run of sites; a context manager that tears everything down on exit, errors and signals."""

    def __init__(
        self,
        names: t.Sequence[str] = ("hub", "a", "b"),
        rate: str | None = None,
        loss_pct: float = 0.0,
        *,
        rates: dict[str, str | None] | None = None,
        burst: int | None = None,
        mode: str = "auto",
        keep: bool = False,
    ) -> None:
        """rate: every link's tbf rate ("1gbit", "200mbit"; None: unshaped); rates: per-site exceptions.
        burst: tbf's burst in bytes (default: tbf_burst(rate)). mode: "netns", "loopback", or "auto" (namespaces when they can be made). keep: leave the run up
        after the owning process exits (the CLI's `up`), to be removed by `down`."""
        names = list(names)
        for n in names:
            if not SITE_NAME.match(n):
                raise ValueError(f"site name {n!r}: lowercase letters and digits, starting with a letter")
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"site names must be distinct and not empty: {names}")
        if mode == "auto":
            mode = "netns" if namespaces_available()[0] else "loopback"
        elif mode == "netns" and not namespaces_available()[0]:
            raise NeedsNamespaces(namespaces_available()[1])
        elif mode != "loopback" and mode != "netns":
            raise ValueError(f"mode {mode!r}")
        self.mode, self.names, self.burst, self.keep = mode, names, burst, keep
        # the pid in the tag lets `clean` tell a live run from a leftover one
        self.tag = f"{os.getpid()}x{secrets.token_hex(2)}"
        self.switch_ns = NS_PREFIX + self.tag
        if mode == "netns":
            hosts = list(NETWORK.hosts())
            self.addrs = {n: str(hosts[i]) for i, n in enumerate(names)}
        else:
            # a random 127.x.y.0/24 per run, so parallel loopback runs do not share addresses
            x, y = random.randint(1, 254), random.randint(0, 255)
            self.addrs = {n: f"127.{x}.{y}.{i + 1}" for i, n in enumerate(names)}
        for r in [rate, *(rates or {}).values()]:
            if r:
                parse_rate(r)  # a typo fails here, not halfway through building
        self.links = {n: Link(rate=(rates or {}).get(n, rate), loss=float(loss_pct)) for n in names}
        self.procs: list[Proc] = []
        self._relays: dict[str, Proc] = {}
        self._ns_fds: dict[str, int] = {}
        self._up = False
        self._old_handlers: dict[int, t.Any] = {}
        self._lock = threading.Lock()

    # -- names ---------------------------------------------------------------------------------------

    def ns(self, site: str) -> str:
        self._check(site)
        return f"{self.switch_ns}-{site}"

    def addr(self, site: str) -> str:
        self._check(site)
        return self.addrs[site]

    def _port(self, site: str) -> str:
        """The switch's end of the site's link."""
        return f"p{self.names.index(site)}"

    def _check(self, site: str) -> None:
        if site not in self.addrs:
            raise KeyError(f"no site {site!r} (sites: {', '.join(self.names)})")

    def _need_ns(self, what: str) -> None:
        if self.mode != "netns":
            raise NeedsNamespaces(f"{what} needs namespaces; this run is on loopback addresses "
                                  f"({namespaces_available()[1]})")

    @property
    def hosts_text(self) -> str:
        return "127.0.0.1 localhost\n::1 localhost\n" + "".join(f"{a} {n}\n" for n, a in self.addrs.items())

    # -- lifecycle -----------------------------------------------------------------------------------

    def __enter__(self) -> Sites:
        if threading.current_thread() is threading.main_thread():
            # SIGTERM/SIGHUP would end the process without unwinding; make them unwind (and so tear down)
            for sig in (signal.SIGTERM, signal.SIGHUP):
                if signal.getsignal(sig) in (signal.SIG_DFL, None):
                    self._old_handlers[sig] = signal.signal(sig, _exit_on_signal)
        try:
            self.up()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: t.Any) -> None:
        try:
            self.down()
        finally:
            for sig, old in self._old_handlers.items():
                signal.signal(sig, old)
            self._old_handlers.clear()

    def up(self) -> Sites:
        if self._up:
            return self
        self._up = True
        atexit.register(self.down)
        try:
            if self.mode == "netns":
                self._write_state()
                self._build()
        except BaseException:
            self.down()
            raise
        return self

    def _build(self) -> None:
        sw = self.switch_ns
        sh(["ip", "netns", "add", sw])
        self._in(sw, "ip link add br0 type bridge", "ip link set br0 up", "ip link set lo up")
        for site in self.names:
            ns, port = self.ns(site), self._port(site)
            sh(["ip", "netns", "add", ns])
            etc = Path("/etc/netns") / ns
            etc.mkdir(parents=True, exist_ok=True)
            # `ip netns exec` mounts this over /etc/hosts: the sites' names resolve inside (GridFTP needs its own)
            (etc / "hosts").write_text(self.hosts_text)
            # made inside the switch namespace with its peer placed straight into the site's: never on the host
            sh(["ip", "-n", sw, "link", "add", port, "type", "veth", "peer", "name", DEV, "netns", ns])
            self._in(sw, f"ip link set {port} master br0", f"ip link set {port} up")
            self._in(ns, f"ip addr add {self.addrs[site]}/{NETWORK.prefixlen} dev {DEV}",
                     f"ip link set {DEV} up", "ip link set lo up")
            self._apply_rate(site)
        self._apply_filters()

    def down(self) -> None:
        """Stop every process, delete the namespaces and /etc/netns entries. Idempotent."""
        with self._lock:
            if not self._up:
                return
            self._up = False
        atexit.unregister(self.down)
        for proc in self.procs:
            proc.kill(signal.SIGTERM)
        deadline = time.monotonic() + 3
        for proc in self.procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill(signal.SIGKILL)
        for fd in self._ns_fds.values():
            os.close(fd)
        self._ns_fds.clear()
        if self.mode == "netns":
            remove_run(self.tag)
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def _write_state(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        state = {"tag": self.tag, "owner": os.getpid(), "keep": self.keep, "sites": self.addrs,
                 "links": {n: dataclasses.asdict(link) for n, link in self.links.items()}, "relays": {s: p.pid for s, p in self._relays.items()}}
        tmp = STATE_DIR / f".{self.tag}.json"
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(STATE_DIR / f"{self.tag}.json")

    def _in(self, ns: str, *commands: str) -> None:
        for cmd in commands:
            sh(["ip", "netns", "exec", ns, *cmd.split()])

    # -- processes -----------------------------------------------------------------------------------

    def _argv(self, site: str, argv: t.Sequence[str | os.PathLike[str]]) -> list[str]:
        plain = [os.fspath(a) for a in argv]
        return ["ip", "netns", "exec", self.ns(site), *plain] if self.mode == "netns" else plain

    def spawn(self, site: str, argv: t.Sequence[str | os.PathLike[str]], *, env: dict[str, str] | None = None,
              log: str | os.PathLike[str] | None = None, cwd: str | os.PathLike[str] | None = None) -> Proc:
        """Start a real process in the site (its stdout and stderr go to `log`, else are discarded)."""
        if not self._up:
            raise RuntimeError("the sites are not up")
        full = self._argv(site, argv)
        log_path = Path(log) if log is not None else None
        out = open(log_path, "ab") if log_path else subprocess.DEVNULL
        try:
            # `ip netns exec` execs the command: the pid is the program's own
            popen = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                     env=env, cwd=cwd, start_new_session=True)
        finally:
            if log_path:
                out.close()  # type: ignore[union-attr]
        proc = Proc(popen, site, [os.fspath(a) for a in argv], log_path)
        self.procs.append(proc)
        return proc

    def run(self, site: str, argv: t.Sequence[str | os.PathLike[str]], *, timeout: float = 120.0,
            check: bool = True, input: str | None = None, env: dict[str, str] | None = None,
            cwd: str | os.PathLike[str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run a command in the site to completion; raises on a non-zero exit when `check`."""
        full = self._argv(site, argv)
        proc = subprocess.run(full, input=input, capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=cwd, start_new_session=True)
        if check and proc.returncode != 0:
            raise RuntimeError(f"[{site}] $ {' '.join(full)}\nexit {proc.returncode}\n{proc.stdout[-2000:]}"
                               f"\n{proc.stderr[-4000:]}")
        return proc

    # -- sockets from this process --------------------------------------------------------------------

    def socket(self, site: str, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM) -> Socket:
        """A socket that lives in the site's namespace (made on a short-lived thread that enters it)."""
        self._check(site)
        if self.mode != "netns":
            return socket.socket(family, type)
        fd = self._ns_fds.get(site)
        if fd is None:
            fd = self._ns_fds[site] = os.open(f"/run/netns/{self.ns(site)}", os.O_RDONLY)
        made: list[t.Any] = []

        def enter_and_make() -> None:
            try:
                _Libc.setns(fd)  # only this thread moves; it ends right after
                made.append(socket.socket(family, type))
            except OSError as err:
                made.append(err)

        th = threading.Thread(target=enter_and_make)
        th.start()
        th.join(10)
        if not made or isinstance(made[0], OSError):
            raise RuntimeError(f"could not make a socket in {site}: {made[0] if made else 'timed out'}")
        return made[0]

    def connect(self, site: str, host: str, port: int, timeout: float = 5.0) -> Socket:
        """A TCP connection from the site to host:port (a site's name or an address)."""
        sock = self.socket(site)
        sock.settimeout(timeout)
        try:
            sock.connect((self.addrs.get(host, host), port))
        except BaseException:
            sock.close()
            raise
        return sock

    def wait_tcp(self, site: str, host: str, port: int, timeout: float = 30.0,
                 proc: Proc | None = None) -> None:
        """Wait until host:port accepts connections from the site (and `proc`, if given, is still alive)."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if proc is not None and not proc.alive():
                raise RuntimeError(f"{proc} exited with {proc.returncode} before {host}:{port} was up")
            try:
                self.connect(site, host, port, timeout=1.0).close()
                return
            except OSError as err:
                last = err
                time.sleep(0.05)
        raise TimeoutError(f"{host}:{port} not reachable from {site} within {timeout}s: {last}")

    # -- the network ---------------------------------------------------------------------------------

    def set_rate(self, site: str, rate: str | None) -> None:
        """Shape the site's link (both directions) to `rate` (tc syntax: "1gbit"), or unshape it (None)."""
        self._need_ns("shaping")
        self.links[site].rate = rate
        self._apply_rate(site)
        self._write_state()

    def _apply_rate(self, site: str) -> None:
        # both ends: the site's own device shapes what it sends, the switch's port what it receives
        for ns, dev in ((self.ns(site), DEV), (self.switch_ns, self._port(site))):
            rate = self.links[site].rate
            if rate:
                burst = self.burst or tbf_burst(rate)
                sh(["ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", dev, "root", "tbf",
                    "rate", rate, "burst", str(burst), "latency", "50ms"])
            else:
                sh(["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", dev, "root"], check=False)

    def set_loss(self, site: str, pct: float) -> None:
        """Drop `pct` % of the packets crossing the site's link, each direction drawn on its own (0: none)."""
        self._need_ns("packet loss")
        if not 0 <= pct <= 100:
            raise ValueError(f"loss {pct}% is not a percentage")
        self.links[site].loss = float(pct)
        self._apply_filters()

    def cut(self, site: str) -> None:
        """Cut the site off: every frame to or from it is dropped (its link stays up, as in a partition)."""
        self._need_ns("cutting a link")
        self.links[site].cut = True
        self._apply_filters()

    def heal(self, site: str) -> None:
        self._need_ns("healing a link")
        self.links[site].cut = False
        self._apply_filters()

    def _apply_filters(self) -> None:
        """Rewrite the switch's one nft table from self.links, in one transaction."""
        rules = []
        for site in self.names:
            link, port = self.links[site], self._port(site)
            for match in (f'iifname "{port}"', f'oifname "{port}"'):
                if link.cut:
                    rules.append(f"{match} drop")
                elif link.loss > 0:
                    # numgen draws per packet: one in a million steps
                    rules.append(f"{match} numgen random mod 1000000 < {round(link.loss * 10000)} drop")
        body = "".join(f"    {r}\n" for r in rules)
        script = ("table bridge ferrysites\ndelete table bridge ferrysites\n"
                  "table bridge ferrysites {\n  chain links {\n    type filter hook forward priority 0\n"
                  f"{body}  }}\n}}\n")
        sh(["ip", "netns", "exec", self.switch_ns, "nft", "-f", "-"], input=script)
        self._write_state()

    def delay(self, site: str, ms: float) -> None:
        """Delay every new TCP connection INTO the site by `ms` each way (RTT + 2·ms; 0 removes it).

        A relay in the site (sites/relay.py) takes the connections that an nft `redirect` sends it and
        forwards each to its original destination. A connection between two delayed sites is delayed once,
        by the side it is made to. Connections open before the call keep their path."""
        self._need_ns("delay by redirect")
        self._set_redirect(site, on=False)
        old = self._relays.pop(site, None)
        if old is not None:
            old.stop()
        self.links[site].delay = float(ms)
        if ms > 0:
            relay = self.spawn(site, [sys.executable, RELAY, "--listen", f"0.0.0.0:{RELAY_PORT}",
                                      "--transparent", "--delay-ms", str(ms)])
            self._relays[site] = relay
            self.wait_tcp(site, "127.0.0.1", RELAY_PORT, timeout=15, proc=relay)
            self._set_redirect(site, on=True)
        self._write_state()

    def _set_redirect(self, site: str, on: bool) -> None:
        ns = self.ns(site)
        sh(["ip", "netns", "exec", ns, "nft", "delete", "table", "ip", "ferrysites_delay"], check=False)
        if on:
            script = ("table ip ferrysites_delay {\n  chain inbound {\n    type nat hook prerouting priority -100\n"
                      f'    iifname "{DEV}" tcp dport != {RELAY_PORT} redirect to :{RELAY_PORT}\n  }}\n}}\n')
            sh(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=script)

    def relay(self, site: str, listen: tuple[str, int], target: tuple[str, int], delay_ms: float,
              log: str | os.PathLike[str] | None = None) -> Proc:
        """Start a delaying relay in the site: listen -> target, `delay_ms` each way (works on loopback too).
        Host names of sites are turned into their addresses."""
        lhost, thost = self.addrs.get(listen[0], listen[0]), self.addrs.get(target[0], target[0])
        proc = self.spawn(site, [sys.executable, RELAY, "--listen", f"{lhost}:{listen[1]}",
                                 "--target", f"{thost}:{target[1]}", "--delay-ms", str(delay_ms)], log=log)
        self.wait_tcp(site, "127.0.0.1" if lhost == "0.0.0.0" else lhost, listen[1], timeout=15, proc=proc)
        return proc

    def counters(self, site: str) -> dict[str, int]:
        """Bytes and packets through the site's interface since it was made (rx: received by the site)."""
        self._need_ns("per-site byte counters")
        out = sh(["ip", "-n", self.ns(site), "-j", "-s", "link", "show", "dev", DEV]).stdout
        stats = json.loads(out)[0]["stats64"]
        return {"rx_bytes": stats["rx"]["bytes"], "tx_bytes": stats["tx"]["bytes"],
                "rx_packets": stats["rx"]["packets"], "tx_packets": stats["tx"]["packets"]}


def _exit_on_signal(signum: int, _frame: t.Any) -> None:
    raise SystemExit(128 + signum)


# -- runs as the system sees them (for clean/down/status, and teardown) ---------------------------------


def kit_namespaces() -> list[str]:
    out = sh(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(NS_PREFIX)]


def tag_of(ns: str) -> str:
    return ns[len(NS_PREFIX):].split("-", 1)[0]


def read_state(tag: str) -> dict[str, t.Any] | None:
    try:
        return t.cast(dict, json.loads((STATE_DIR / f"{tag}.json").read_text()))
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie (a killed process waits a moment to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def parse_rate(rate: str) -> float:
    """tc's bit rates ("1gbit", "200mbit", "64kbit", "1000bit") in bits per second."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kmgt]?)bit", rate.strip().lower())
    if not m:
        raise ValueError(f"rate {rate!r}: use tc's bit units, e.g. 1gbit, 200mbit")
    return float(m.group(1)) * 1000 ** " kmgt".index(m.group(2) or " ")


def tbf_burst(rate: str) -> int:
    """Bytes tbf may send at once: 8 ms at the rate (1 MB at 1 Gbit/s), at least 64 KiB (one GSO packet),
    so that a slow link is not mostly burst."""
    return max(64 << 10, int(parse_rate(rate) / 8 * 0.008))


def runs() -> dict[str, dict[str, t.Any]]:
    """Every run with a namespace, /etc/netns entry or state file: tag -> state (or {} if none) + namespaces."""
    found: dict[str, dict[str, t.Any]] = {}
    names = kit_namespaces()
    etc = [p.name for p in Path("/etc/netns").glob(NS_PREFIX + "*")] if Path("/etc/netns").is_dir() else []
    for ns in names + etc:
        found.setdefault(tag_of(ns), {})
    if STATE_DIR.is_dir():
        for p in STATE_DIR.glob("*.json"):
            found.setdefault(p.stem, {})
    for tag, info in found.items():
        info.update(read_state(tag) or {})
        info["namespaces"] = [ns for ns in names if tag_of(ns) == tag]
    return found


def remove_run(tag: str) -> None:
    """Kill whatever runs in the run's namespaces, delete them, their /etc/netns entries and the state file."""
    prefix = NS_PREFIX + tag
    namespaces = [ns for ns in kit_namespaces() if tag_of(ns) == tag]
    for ns in namespaces:
        for pid in sh(["ip", "netns", "pids", ns], check=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
    for ns in namespaces:
        # a killed process may hold the namespace a moment longer; deletion only unlinks the name anyway
        sh(["ip", "netns", "del", ns], check=False)
    if Path("/etc/netns").is_dir():
        for p in Path("/etc/netns").glob(prefix + "*"):
            if tag_of(p.name) == tag:
                shutil.rmtree(p, ignore_errors=True)
    (STATE_DIR / f"{tag}.json").unlink(missing_ok=True)


def is_leftover(info: dict[str, t.Any], tag: str) -> bool:
    """A run nobody owns any more: its owner is gone and it was not kept on purpose."""
    if info.get("keep"):
        return False
    owner = info.get("owner")
    if owner is None:
        m = re.match(r"(\d+)x", tag)
        owner = int(m.group(1)) if m else None
    return owner is None or not pid_alive(int(owner))


# -- CLI -------------------------------------------------------------------------------------------------


def cli(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="kit.py", description="Several sites on one machine (network namespaces).")
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="make sites and leave them up (until `down`)")
    up.add_argument("--sites", default="hub,a,b", help="comma-separated site names (default hub,a,b)")
    up.add_argument("--rate", default=None, help="tbf rate of every link, e.g. 1gbit (default: unshaped)")
    up.add_argument("--loss", type=float, default=0.0, help="percent of packets dropped on every link")
    down = sub.add_parser("down", help="remove runs made by `up` (all of them, or the tags given)")
    down.add_argument("tags", nargs="*")
    clean = sub.add_parser("clean", help="remove leftovers of runs whose owner is gone")
    clean.add_argument("--all", action="store_true", help="also runs that are kept or still owned")
    sub.add_parser("status", help="list the kit's runs")
    args = ap.parse_args(argv)

    if args.cmd == "up":
        sites = Sites(args.sites.split(","), rate=args.rate, loss_pct=args.loss, mode="netns", keep=True)
        sites.up()
        atexit.unregister(sites.down)  # kept: it outlives this command
        print(f"run {sites.tag} is up (remove with: python {Path(__file__).name} down {sites.tag})")
        for n in sites.names:
            print(f"  {n:8} {sites.addrs[n]:15} ip netns exec {sites.ns(n)} ...")
        return 0
    all_runs = runs()
    if args.cmd == "down":
        tags = args.tags or [tag for tag, info in all_runs.items() if info.get("keep")]
        for tag in tags:
            remove_run(tag)
            print(f"removed {tag}")
        return 0
    if args.cmd == "clean":
        for tag, info in all_runs.items():
            if args.all or is_leftover(info, tag):
                remove_run(tag)
                print(f"removed {tag} ({len(info['namespaces'])} namespaces)")
        return 0
    if not all_runs:
        print("no runs")
    for tag, info in all_runs.items():
        who = "kept" if info.get("keep") else ("leftover" if is_leftover(info, tag) else f"owner {info.get('owner')}")
        print(f"run {tag}: {who}, {len(info['namespaces'])} namespaces")
        for name, addr in (info.get("sites") or {}).items():
            link = (info.get("links") or {}).get(name, {})
            print(f"  {name:8} {addr:15} rate={link.get('rate')} loss={link.get('loss')}% "
                  f"cut={link.get('cut')} delay={link.get('delay')}ms")
    return 0


if __name__ == "__main__":
    sys.exit(cli())
