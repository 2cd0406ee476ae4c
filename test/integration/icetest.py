"""Integration test framework for kamailio-ice.

Every test runs Debian's kamailio (loading the freshly built ice.so) and sipp
peers inside network namespaces that the test creates ("icet-*"), so the
host's interfaces, routes, firewall and ports are never touched, and packets
addressed to a private (10.x) address can never leave the machine: a test
namespace has no default route to the outside.

What a test gets (see Test): a work dir, namespaces, nft counters on the
receivers' input hooks, a kamailio with a generated config and a JSON-RPC
client (jsonrpcs over a unix datagram socket), sipp processes with message
logs, SIP/SDP parsing of those logs, and checks that record failures and go
on, so a run reports every failing check, not just the first.

Module presence (env):
  ICE_SO=/abs/ice.so       module to load (default: <repo>/modules/ice/ice.so).
                           A missing module is a test failure...
  ICE_ALLOW_NO_MODULE=1    ...unless this is set: then kamailio runs as a plain
                           proxy and every check that needs the module is
                           reported as SKIPPED (development only).
  ICE_NO_MODULE=1          proxy-only even if the module exists.
Other env: ICE_TEST_OUT (artifact dir, default /tmp/icet-out), ICE_TEST_DEBUG
(kamailio debug level, default 2), ICE_TEST_FLAGS (ice_manage flags, default
"remove"; "pass" must make the media checks fail), KAMAILIO, KAM_MPATH, SIPP.
"""

import json
import math
import os
import re
import shlex
import signal
import socket
import struct
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SCEN_DIR = os.path.join(HERE, "sipp")

KAMAILIO = os.environ.get("KAMAILIO", "/usr/sbin/kamailio")
KAM_MPATH = os.environ.get("KAM_MPATH",
                           "/usr/lib/x86_64-linux-gnu/kamailio/modules/")
SIPP = os.environ.get("SIPP", "/usr/bin/sipp")
OUT_ROOT = os.environ.get("ICE_TEST_OUT", "/tmp/icet-out")

RELAY_PORT_MIN = 35000
RELAY_PORT_MAX = 35999
NS_PREFIX = os.environ.get("ICE_NS_PREFIX", "icet-")

# RTP from sipp's rtp_stream: 20 ms PCMU packets, 50 per second.
RTP_PPS = 50


class TestError(Exception):
    """A required step failed; the test stops here."""


class Skip(Exception):
    """Raised by a module-only block when the module is absent."""


# --------------------------------------------------------------------------
# small helpers

def sh(cmd, check=True, timeout=20, capture=True, ns=None):
    """Run a command (list or string), optionally inside a namespace."""
    if isinstance(cmd, str):
        cmd = shlex.split(cmd)
    if ns:
        cmd = ["ip", "netns", "exec", ns] + list(cmd)
    r = subprocess.run(cmd, stdout=subprocess.PIPE if capture else None,
                       stderr=subprocess.STDOUT if capture else None,
                       timeout=timeout, text=True)
    if check and r.returncode != 0:
        raise TestError("command failed (rc=%d): %s\n%s" %
                        (r.returncode, " ".join(cmd), r.stdout or ""))
    return r


def wait_for(pred, timeout, interval=0.1, what="condition"):
    """Poll pred() until it returns a truthy value; bounded by timeout."""
    deadline = time.monotonic() + timeout
    while True:
        last = pred()
        if last or time.monotonic() >= deadline:
            return last
        time.sleep(interval)


def tail(path, n=60):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return "<%s: %s>" % (path, e)
    lines = data.decode("utf-8", "replace").splitlines()
    return "\n".join(lines[-n:])


def write_tone_wav(path, seconds=2.0, freq=400.0):
    """A mono 8 kHz mu-law (PCMU) WAV file; sipp's rtp_stream skips the
    header and sends 160-byte payloads every 20 ms with payload type 0."""
    def ulaw(s):
        sign = 0x80 if s < 0 else 0
        s = min(-s if s < 0 else s, 32635) + 0x84
        exp, mask = 7, 0x4000
        while exp > 0 and not (s & mask):
            exp -= 1
            mask >>= 1
        return ~(sign | (exp << 4) | ((s >> (exp + 3)) & 0x0F)) & 0xFF
    n = int(8000 * seconds)
    data = bytes(ulaw(int(8000 * math.sin(2 * math.pi * freq * i / 8000)))
                 for i in range(n))
    # WAVE_FORMAT_MULAW (7), mono, 8000 Hz, 8000 B/s, align 1, 8 bits
    fmt = struct.pack("<HHIIHHH", 7, 1, 8000, 8000, 1, 8, 0)
    riff = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt +
            b"data" + struct.pack("<I", len(data)) + data)
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(riff)) + riff)


# --------------------------------------------------------------------------
# SIP / SDP parsing

class SipMsg:
    def __init__(self, raw, direction, ts):
        self.raw = raw              # bytes, exactly as sent/received
        self.direction = direction  # "sent" | "received"
        self.ts = ts
        head, sep, body = raw.partition(b"\r\n\r\n")
        if not sep:
            head, sep, body = raw.partition(b"\n\n")
        self.body = body
        lines = head.decode("utf-8", "replace").replace("\r\n", "\n")
        lines = lines.split("\n")
        self.start = lines[0] if lines else ""
        self.headers = []
        for ln in lines[1:]:
            if ln[:1] in (" ", "\t") and self.headers:
                k, v = self.headers[-1]
                self.headers[-1] = (k, v + " " + ln.strip())
            elif ":" in ln:
                k, v = ln.split(":", 1)
                self.headers.append((k.strip().lower(), v.strip()))
        m = re.match(r"SIP/2\.0 (\d{3})", self.start)
        self.status = int(m.group(1)) if m else None
        self.method = None if m else self.start.split(" ", 1)[0]
        if self.status is not None:
            cseq = self.header("cseq") or ""
            self.cseq_method = cseq.split()[-1] if cseq.split() else ""
        else:
            self.cseq_method = self.method

    _compact = {"i": "call-id", "f": "from", "t": "to", "v": "via",
                "m": "contact", "c": "content-type", "l": "content-length"}

    def header(self, name):
        name = name.lower()
        for k, v in self.headers:
            if k == name or self._compact.get(k) == name:
                return v
        return None

    def to_tag(self):
        m = re.search(r";\s*tag=([^;>\s]+)", self.header("to") or "")
        return m.group(1) if m else None

    def sdp(self):
        if not self.body.strip():
            return None
        return Sdp(self.body)

    def label(self):
        return self.start if self.status is None else "%s (%s)" % (
            self.start, self.cseq_method)


class Sdp:
    """Just enough SDP to find where media is sent: session/media c= and
    each m= line's port."""

    def __init__(self, body):
        self.text = body.decode("utf-8", "replace")
        self.session_addr = None
        self.media = []   # dicts: media, port, proto, addr, attrs
        cur = None
        for ln in self.text.replace("\r\n", "\n").split("\n"):
            if ln.startswith("m="):
                parts = ln[2:].split()
                port = None
                if len(parts) > 1 and parts[1].split("/")[0].isdigit():
                    port = int(parts[1].split("/")[0])
                cur = {"media": parts[0] if parts else "", "port": port,
                       "proto": parts[2] if len(parts) > 2 else "",
                       "addr": None, "attrs": []}
                self.media.append(cur)
            elif ln.startswith("c="):
                parts = ln[2:].split()
                addr = parts[2] if len(parts) > 2 else None
                if cur is None:
                    self.session_addr = addr
                else:
                    cur["addr"] = addr
            elif ln.startswith("a=") and cur is not None:
                cur["attrs"].append(ln[2:])

    def audio(self):
        for m in self.media:
            if m["media"] == "audio":
                return m
        return None

    def audio_dest(self):
        """(address, port) the sender of this SDP wants audio at."""
        a = self.audio()
        if not a:
            return (self.session_addr, None)
        return (a["addr"] or self.session_addr, a["port"])


def parse_sipp_messages(path):
    """Parse a sipp -trace_msg file into SipMsg objects (exact bytes, using
    the byte counts sipp prints)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return []
    out = []
    hdr = re.compile(
        rb"-{20,} ([^\n]*)\n[A-Z]+ message (sent|received) "
        rb"(?:\((\d+) bytes\):|\[(\d+)\] bytes :)\n\n")
    pos = 0
    while True:
        m = hdr.search(data, pos)
        if not m:
            break
        n = int(m.group(3) or m.group(4))
        start = m.end()
        raw = data[start:start + n]
        out.append(SipMsg(raw, m.group(2).decode(), m.group(1).decode()))
        pos = start + n
    return out


def in_relay_range(port):
    return port is not None and RELAY_PORT_MIN <= port <= RELAY_PORT_MAX


# --------------------------------------------------------------------------
# namespaces and nftables

def cleanup_stale_namespaces():
    """Remove icet-* namespaces left by an earlier, killed run (their
    processes are ours: only our tests create such namespaces)."""
    r = sh(["ip", "netns", "list"], check=False)
    for ln in (r.stdout or "").splitlines():
        name = ln.split()[0] if ln.split() else ""
        if name.startswith(NS_PREFIX):
            Netns.destroy_by_name(name)


class Netns:
    def __init__(self, t, role):
        self.t = t
        self.name = NS_PREFIX + role
        Netns.destroy_by_name(self.name)
        sh(["ip", "netns", "add", self.name])
        t.defer(self.destroy, "netns %s" % self.name)
        self.run("ip link set lo up")

    def run(self, cmd, check=True, timeout=20):
        return sh(cmd, check=check, timeout=timeout, ns=self.name)

    def sysctl(self, key, val):
        self.run(["sysctl", "-q", "-w", "%s=%s" % (key, val)])

    def nft(self, ruleset):
        r = subprocess.run(["ip", "netns", "exec", self.name,
                            "nft", "-f", "-"],
                           input=ruleset, text=True, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=10)
        if r.returncode != 0:
            raise TestError("nft failed in %s: %s\n%s" %
                            (self.name, r.stdout, ruleset))

    def destroy(self):
        Netns.destroy_by_name(self.name)

    @staticmethod
    def destroy_by_name(name):
        if not os.path.exists("/run/netns/" + name):
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            r = sh(["ip", "netns", "pids", name], check=False)
            pids = [int(p) for p in (r.stdout or "").split() if p.isdigit()]
            if not pids:
                break
            for p in pids:
                try:
                    os.kill(p, sig)
                except ProcessLookupError:
                    pass
            wait_for(lambda: not sh(["ip", "netns", "pids", name],
                                    check=False).stdout.split(), 3)
        sh(["ip", "netns", "del", name], check=False)


def veth(ns_a, if_a, addr_a, ns_b, if_b, addr_b):
    """A veth pair between two namespaces, each end with an address/prefix."""
    sh(["ip", "link", "add", if_a, "netns", ns_a.name, "type", "veth",
        "peer", "name", if_b, "netns", ns_b.name])
    for ns, ifn, addr in ((ns_a, if_a, addr_a), (ns_b, if_b, addr_b)):
        ns.run(["ip", "addr", "add", addr, "dev", ifn])
        ns.run(["ip", "link", "set", ifn, "up"])


class NftCounters:
    """Named counters on a namespace's input hook: each counts the packets
    that match an nft expression, e.g.
      add("uac_from_relay", "udp sport 35000-35999 udp dport 6000")."""

    def __init__(self, ns, table="icetest"):
        self.ns = ns
        self.table = table
        ns.nft("table inet %s {\n chain input {\n"
               "  type filter hook input priority -10; policy accept;\n"
               " }\n}\n" % table)

    def add(self, name, expr):
        self.ns.nft("add rule inet %s input %s counter comment \"%s\"\n" %
                    (self.table, expr, name))

    def read(self):
        r = self.ns.run(["nft", "-j", "list", "table", "inet", self.table])
        out = {}
        for item in json.loads(r.stdout).get("nftables", []):
            rule = item.get("rule")
            if not rule or "comment" not in rule:
                continue
            for e in rule.get("expr", []):
                if "counter" in e:
                    out[rule["comment"]] = (e["counter"]["packets"],
                                            e["counter"]["bytes"])
        return out

    def packets(self):
        return {k: v[0] for k, v in self.read().items()}


# --------------------------------------------------------------------------
# kamailio

CFG_TEMPLATE = r"""#!KAMAILIO
# generated by test/integration/icetest.py for test %(test)s
%(defines)s
debug=%(debug)d
log_stderror=yes
log_prefix="{$mt $hdr(CSeq) $ci} "
fork=yes
children=2
disable_tcp=yes
auto_aliases=no
listen=udp:%(listen_ip)s:%(listen_port)d
alias="%(listen_ip)s:%(listen_port)d"
mhomed=0
dns=no
rev_dns=no
use_dns_cache=no

mpath="%(mpath)s"
loadmodule "jsonrpcs.so"
loadmodule "ctl.so"
loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "nathelper.so"

modparam("jsonrpcs", "transport", 4)
modparam("jsonrpcs", "dgram_socket", "%(rpc_sock)s")
modparam("ctl", "binrpc", "unix:%(ctl_sock)s")
modparam("tm", "fr_timer", 5000)
modparam("tm", "fr_inv_timer", 20000)
modparam("rr", "enable_full_lr", 1)
modparam("nathelper", "received_avp", "$avp(RECEIVED)")

#!ifdef WITH_ICE
loadmodule "%(ice_so)s"
modparam("ice", "port_min", %(port_min)d)
modparam("ice", "port_max", %(port_max)d)
modparam("ice", "interface", "%(ice_interface)s")
modparam("ice", "forwarders", 1)
modparam("ice", "media_timeout", 30)
modparam("ice", "io_uring", %(io_uring)d)
#!endif

request_route {
	xlog("L_INFO", "ICETEST request $rm $ru from $si:$sp\n");
	if (!mf_process_maxfwd_header("10")) {
		sl_send_reply("483", "Too Many Hops");
		exit;
	}
	if (has_totag()) {
		if (loose_route()) {
			route(MEDIA);
			route(RELAY);
			exit;
		}
		if (is_method("ACK")) {
			if (t_check_trans()) {
				route(RELAY);
			}
			exit;
		}
		sl_send_reply("404", "Not here");
		exit;
	}
	if (is_method("CANCEL")) {
		if (t_check_trans()) {
			route(MEDIA);
			route(RELAY);
		}
		exit;
	}
	if (is_method("ACK")) {
		exit;
	}
	t_check_trans();
	if (is_method("INVITE")) {
		record_route();
	}
	$du = "sip:%(uas_hostport)s";
	route(MEDIA);
	route(RELAY);
}

route[RELAY] {
	if (is_method("INVITE")) {
		t_on_reply("MREPLY");
		t_on_failure("MFAIL");
	}
	if (!t_relay()) {
		sl_reply_error();
	}
	exit;
}

route[MEDIA] {
	if (is_method("INVITE|ACK|UPDATE") && has_body("application/sdp")) {
#!ifdef WITH_ICE
		ice_manage("%(ice_flags)s");
		$var(icerc) = $rc;
		xlog("L_NOTICE", "ICETEST ice_manage rc=$var(icerc) msg=$rm cid=$ci\n");
#!else
		xlog("L_NOTICE", "ICETEST proxy-only: no ice_manage for $rm cid=$ci\n");
#!endif
	} else if (is_method("BYE|CANCEL")) {
		xlog("L_INFO", "ICETEST end of call: $rm cid=$ci\n");
#!ifdef WITH_ICE
		ice_delete();
		$var(icerc) = $rc;
		xlog("L_NOTICE", "ICETEST ice_delete rc=$var(icerc) msg=$rm cid=$ci\n");
#!endif
	}
}

onreply_route[MREPLY] {
	xlog("L_INFO", "ICETEST reply $rs $rr cseq=$hdr(CSeq) from $si:$sp\n");
	if (nat_uac_test("1")) {
		fix_nated_contact();
	}
	if (has_body("application/sdp") && ($rs =~ "^1[0-9][0-9]$" || $rs =~ "^2[0-9][0-9]$")) {
#!ifdef WITH_ICE
		ice_manage("%(ice_flags)s");
		$var(icerc) = $rc;
		xlog("L_NOTICE", "ICETEST ice_manage rc=$var(icerc) msg=$rs cid=$ci\n");
#!else
		xlog("L_NOTICE", "ICETEST proxy-only: no ice_manage for $rs cid=$ci\n");
#!endif
	}
}

failure_route[MFAIL] {
	if (t_is_canceled()) {
		exit;
	}
#!ifdef WITH_ICE
	ice_delete();
	$var(icerc) = $rc;
	xlog("L_NOTICE", "ICETEST ice_delete rc=$var(icerc) msg=failure cid=$ci\n");
#!endif
}
"""


class RpcError(Exception):
    pass


class Kamailio:
    """kamailio -DD -E (foreground main, forked children) in a namespace,
    with a generated config, ctl + jsonrpcs sockets under its rundir."""

    def __init__(self, t, ns, listen_ip, uas_hostport, listen_port=5060,
                 relay_ip=None, ice_flags=None, name="kamailio"):
        self.t = t
        self.ns = ns
        self.name = name
        self.listen_ip = listen_ip
        self.listen_port = listen_port
        self.dir = os.path.join(t.dir, name)
        self.rundir = os.path.join(self.dir, "run")
        os.makedirs(self.rundir, exist_ok=True)
        self.cfg = os.path.join(self.dir, "kamailio.cfg")
        self.logfile = os.path.join(self.dir, "kamailio.log")
        self.rpc_sock = os.path.join(self.rundir, "kamailio_rpc.sock")
        self.ctl_sock = os.path.join(self.rundir, "kamailio_ctl")
        self.proc = None
        self.rpc_n = 0
        if len(self.rpc_sock) > 100:
            raise TestError("work dir %s is too long for unix socket paths; "
                            "set ICE_TEST_OUT to a short path" % self.dir)
        relay_ip = relay_ip or listen_ip
        if ice_flags is None:
            ice_flags = os.environ.get("ICE_TEST_FLAGS", "remove")
        defines = "#!define WITH_ICE\n" if t.ice_so else ""
        cfg = CFG_TEMPLATE % {
            "test": t.name, "defines": defines,
            "debug": int(os.environ.get("ICE_TEST_DEBUG", "2")),
            "listen_ip": listen_ip, "listen_port": listen_port,
            "mpath": KAM_MPATH, "rpc_sock": self.rpc_sock,
            "ctl_sock": self.ctl_sock, "ice_so": t.ice_so or "",
            "port_min": RELAY_PORT_MIN, "port_max": RELAY_PORT_MAX,
            "ice_interface": "pub/%s" % relay_ip, "ice_flags": ice_flags,
            "uas_hostport": uas_hostport,
            # the forwarder's media I/O: 1 io_uring (epoll where refused),
            # 0 epoll (test call_basic_epoll)
            "io_uring": int(os.environ.get("ICE_TEST_IO_URING", "1")),
        }
        with open(self.cfg, "w") as f:
            f.write(cfg)

    def _argv(self, *extra):
        return ["ip", "netns", "exec", self.ns.name, KAMAILIO, "-f", self.cfg,
                "-Y", self.rundir, "-m", "64", "-M", "8", "-w", self.dir] + \
            list(extra)

    def start(self, timeout=10):
        r = subprocess.run(self._argv("-c"), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=20)
        with open(os.path.join(self.dir, "cfgcheck.log"), "w") as f:
            f.write(r.stdout)
        if r.returncode != 0:
            raise TestError("kamailio config check failed (rc=%d):\n%s" %
                            (r.returncode,
                             "\n".join(r.stdout.splitlines()[-40:])))
        self.log_fh = open(self.logfile, "wb")
        self.proc = subprocess.Popen(self._argv("-DD", "-E"),
                                     stdin=subprocess.DEVNULL,
                                     stdout=self.log_fh, stderr=self.log_fh,
                                     start_new_session=True)
        self.t.defer(self.stop, "kamailio")
        self.t.log("kamailio started (pid %d) on %s:%d, cfg %s" %
                   (self.proc.pid, self.listen_ip, self.listen_port, self.cfg))

        def ready():
            if self.proc.poll() is not None:
                raise TestError("kamailio exited during startup (rc=%s); "
                                "log tail:\n%s" % (self.proc.returncode,
                                                    tail(self.logfile, 40)))
            if not os.path.exists(self.rpc_sock):
                return False
            try:
                return self.rpc("core.version", timeout=1) is not None
            except (OSError, RpcError, socket.timeout):
                return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                break
            time.sleep(0.1)
        else:
            raise TestError("kamailio not ready after %ss; log tail:\n%s" %
                            (timeout, tail(self.logfile, 40)))
        # let the SIP workers finish child_init
        time.sleep(0.3)
        if self.proc.poll() is not None:
            raise TestError("kamailio died right after startup; log tail:\n%s"
                            % tail(self.logfile, 40))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        # children may outlive main: kill the whole process group by id
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        try:
            self.log_fh.close()
        except Exception:  # noqa: BLE001
            pass

    def rpc(self, method, *params, timeout=3):
        """JSON-RPC 2.0 over jsonrpcs' unix datagram socket."""
        self.rpc_n += 1
        client = os.path.join(self.rundir, "c%d.sock" % os.getpid())
        try:
            os.unlink(client)
        except FileNotFoundError:
            pass
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            s.bind(client)
            s.settimeout(timeout)
            req = {"jsonrpc": "2.0", "method": method, "id": self.rpc_n}
            if params:
                req["params"] = list(params)
            s.sendto(json.dumps(req).encode(), self.rpc_sock)
            while True:
                data = s.recv(1 << 20)
                rep = json.loads(data.decode("utf-8", "replace"))
                if rep.get("id") == self.rpc_n:
                    break
        finally:
            s.close()
            try:
                os.unlink(client)
            except FileNotFoundError:
                pass
        if "error" in rep:
            raise RpcError("%s: %s" % (method, rep["error"]))
        return rep.get("result")

    def kamcmd(self, *args):
        r = sh(["kamcmd", "-s", "unix:" + self.ctl_sock] + list(args),
               check=False, timeout=10)
        return r.stdout

    def log_text(self):
        try:
            with open(self.logfile, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_lines(self, pattern):
        rx = re.compile(pattern)
        return [ln for ln in self.log_text().splitlines() if rx.search(ln)]


# --------------------------------------------------------------------------
# sipp

class Sipp:
    """One sipp process (foreground, -nostdin) in a namespace; its message
    log (-trace_msg) is parsed by messages()."""

    def __init__(self, t, ns, name, scenario, local_ip, local_port,
                 media_ip, media_port, remote=None, calls=1, args=(),
                 timeout=25):
        self.t = t
        self.ns = ns
        self.name = name
        self.dir = os.path.join(t.dir, name)
        os.makedirs(self.dir, exist_ok=True)
        t.ensure_tone(self.dir)
        self.scenario = scenario if os.path.isabs(scenario) else \
            os.path.join(SCEN_DIR, scenario)
        self.msgfile = os.path.join(self.dir, "messages.log")
        self.errfile = os.path.join(self.dir, "errors.log")
        self.outfile = os.path.join(self.dir, "stdout.log")
        self.media_port = media_port
        self.argv = ["ip", "netns", "exec", ns.name, SIPP,
                     "-sf", self.scenario,
                     "-i", local_ip, "-p", str(local_port),
                     "-mi", media_ip, "-mp", str(media_port),
                     "-m", str(calls), "-l", str(calls),
                     "-nostdin", "-trace_msg", "-message_file", self.msgfile,
                     "-trace_err", "-error_file", self.errfile,
                     "-timeout", "%ds" % timeout, "-timeout_error",
                     "-max_recv_loops", "1000"] + list(args)
        if remote:
            self.argv.append(remote)
        self.proc = None
        self.timeout = timeout

    def start(self):
        self.out_fh = open(self.outfile, "wb")
        self.proc = subprocess.Popen(self.argv, cwd=self.dir,
                                     stdin=subprocess.DEVNULL,
                                     stdout=self.out_fh,
                                     stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.t.defer(self.kill, "sipp %s" % self.name)
        self.t.log("sipp %s started (pid %d): %s" %
                   (self.name, self.proc.pid, os.path.basename(self.scenario)))
        return self

    def wait_listening(self, port, timeout=5):
        """Wait until this sipp has bound its SIP port (UAS)."""
        def bound():
            if self.proc.poll() is not None:
                raise TestError("sipp %s exited early (rc=%s):\n%s" % (
                    self.name, self.proc.returncode, tail(self.outfile, 20)))
            r = self.ns.run(["ss", "-Huln", "sport = :%d" % port], check=False)
            return bool(r.stdout.strip())
        if not wait_for(bound, timeout):
            raise TestError("sipp %s did not bind port %d" % (self.name, port))

    def wait(self, timeout=None):
        try:
            return self.proc.wait(timeout=timeout or self.timeout + 5)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(timeout=3)
                    break
                except subprocess.TimeoutExpired:
                    continue
        try:
            self.out_fh.close()
        except Exception:  # noqa: BLE001
            pass

    def messages(self):
        return parse_sipp_messages(self.msgfile)

    def received(self, pred=None):
        return [m for m in self.messages()
                if m.direction == "received" and (pred is None or pred(m))]

    def sent(self, pred=None):
        return [m for m in self.messages()
                if m.direction == "sent" and (pred is None or pred(m))]

    def errors(self):
        return tail(self.errfile, 30) if os.path.exists(self.errfile) else ""

    def summary(self):
        return "\n".join(m.label() for m in self.messages()
                         if m.direction == "received")


# --------------------------------------------------------------------------
# the test context

class Test:
    def __init__(self, name):
        self.name = name
        self.dir = os.path.join(OUT_ROOT, name)
        if os.path.isdir(self.dir):
            subprocess.run(["rm", "-rf", self.dir], check=False)
        os.makedirs(self.dir)
        self.cleanups = []
        self.failures = []
        self.skipped = []
        self.passed = 0
        self.kams = []
        self.sipps = []
        self._tone = None
        self.ice_so = self._find_module()

    def _find_module(self):
        if os.environ.get("ICE_NO_MODULE") == "1":
            return None
        so = os.environ.get("ICE_SO") or os.path.join(REPO, "modules", "ice",
                                                       "ice.so")
        so = os.path.abspath(so)
        if os.path.exists(so):
            return so
        if os.environ.get("ICE_ALLOW_NO_MODULE") == "1":
            return None
        raise TestError("ice module not found at %s (build it with 'make "
                        "module', or set ICE_ALLOW_NO_MODULE=1 for a "
                        "proxy-only development run)" % so)

    @property
    def has_module(self):
        return self.ice_so is not None

    # -- bookkeeping
    def log(self, msg):
        sys.stdout.write("  [%s] %s\n" % (self.name, msg))
        sys.stdout.flush()

    def defer(self, fn, what):
        self.cleanups.append((fn, what))

    def run_cleanups(self):
        while self.cleanups:
            fn, what = self.cleanups.pop()
            try:
                fn()
            except Exception as e:  # noqa: BLE001
                self.log("cleanup of %s failed: %s" % (what, e))

    def ensure_tone(self, d):
        path = os.path.join(d, "tone.wav")
        if not os.path.exists(path):
            write_tone_wav(path)

    # -- checks
    def check(self, cond, msg, detail=None):
        """A soft check: recorded, and the test goes on."""
        if cond:
            self.passed += 1
            self.log("ok    %s" % msg)
        else:
            self.failures.append(msg)
            self.log("FAIL  %s%s" % (msg, ("\n        " + str(detail).replace(
                "\n", "\n        ")) if detail is not None else ""))
        return bool(cond)

    def require(self, cond, msg, detail=None):
        if not self.check(cond, msg, detail):
            raise TestError(msg)

    def needs_module(self, what):
        """True if module checks should run; records a skip otherwise."""
        if self.has_module:
            return True
        self.skipped.append(what)
        self.log("SKIP  %s (no ice module: proxy-only run)" % what)
        return False

    # -- factories
    def kamailio(self, *a, **kw):
        k = Kamailio(self, *a, **kw)
        self.kams.append(k)
        return k

    def sipp(self, *a, **kw):
        s = Sipp(self, *a, **kw)
        self.sipps.append(s)
        return s

    # -- module helpers (JSON-RPC)
    def ice_sessions(self, kam):
        r = kam.rpc("ice.sessions")
        if isinstance(r, dict):  # tolerate {"sessions": [...]}
            r = r.get("sessions", [])
        return r or []

    def ice_session(self, kam, call_id):
        r = kam.rpc("ice.session", call_id)
        if isinstance(r, list):
            r = r[0] if r else None
        return r

    def diagnostics(self):
        for k in self.kams:
            self.log("kamailio log %s (tail):\n%s" % (k.logfile,
                                                       tail(k.logfile, 50)))
            if self.has_module and k.alive():
                for m in ("ice.sessions", "ice.stats", "ice.ports"):
                    try:
                        self.log("%s: %s" % (m, json.dumps(k.rpc(m))))
                    except Exception as e:  # noqa: BLE001
                        self.log("%s: <%s>" % (m, e))
        for s in self.sipps:
            self.log("sipp %s received: %s" % (s.name, s.summary().replace(
                "\n", " | ") or "<nothing>"))
            err = s.errors()
            if err:
                self.log("sipp %s errors (%s):\n%s" % (s.name, s.errfile, err))


def leg_totals(session):
    """Sum the counters of each leg of an ice.session result:
    [(tag, role, {packets_in, bytes_in, packets_out, bytes_out})]."""
    out = []
    for leg in (session or {}).get("legs", []) or []:
        tot = {"packets_in": 0, "bytes_in": 0, "packets_out": 0,
               "bytes_out": 0}
        for st in leg.get("streams", []) or []:
            for c in st.get("components", []) or []:
                for k in tot:
                    tot[k] += int(c.get(k, 0) or 0)
        out.append((leg.get("tag"), leg.get("role"), tot))
    return out


def local_ports(session):
    ports = []
    for leg in (session or {}).get("legs", []) or []:
        for st in leg.get("streams", []) or []:
            for c in st.get("components", []) or []:
                if c.get("local_port") is not None:
                    ports.append(int(c["local_port"]))
    return ports


# --------------------------------------------------------------------------
# common assertions

def check_relay_sdp(t, msg, relay_ip, who):
    """The SDP in msg must point at the relay: address relay_ip and an audio
    port in the relay range. Returns (addr, port)."""
    sdp = msg.sdp() if msg else None
    if not t.check(sdp is not None and sdp.audio() is not None,
                   "%s: %s carries an SDP with an audio stream" %
                   (who, msg.label() if msg else "message")):
        return (None, None)
    t.check(msg.header("content-length") == str(len(msg.body)),
            "%s: Content-Length %s matches the body (%d bytes)" %
            (who, msg.header("content-length"), len(msg.body)))
    t.check("rtpmap:0 PCMU/8000" in sdp.audio()["attrs"],
            "%s: the codec lines survive (a=rtpmap:0 PCMU/8000)" % who,
            detail=sdp.text)
    addr, port = sdp.audio_dest()
    if t.needs_module("%s: SDP points at the relay" % who):
        t.check(addr == relay_ip and in_relay_range(port),
                "%s: SDP of %s points at the relay (%s:%s, expect %s:%d-%d)" %
                (who, msg.label(), addr, port, relay_ip, RELAY_PORT_MIN,
                 RELAY_PORT_MAX), detail=sdp.text)
    return (addr, port)


def check_rtp_counts(t, counters, rx_name, min_pkts):
    """counters: NftCounters from media_counters(); <rx>_relay and <rx>_all.
    With the module, media must come from the relay only; without it
    (proxy-only), it must come directly from the other party."""
    c = counters.packets()
    t.log("nft counters %s: %s" % (rx_name, {k: v for k, v in c.items()
                                              if k.startswith(rx_name)}))
    relay = c.get(rx_name + "_relay", 0)
    direct = c.get(rx_name + "_all", 0) - relay
    if t.has_module:
        t.check(relay >= min_pkts, "%s received RTP from the relay "
                "(%d packets, need >= %d)" % (rx_name, relay, min_pkts))
        t.check(direct == 0, "%s received no RTP bypassing the relay (%d)" %
                (rx_name, direct))
    else:
        t.check(direct >= min_pkts, "proxy-only: %s received RTP directly "
                "(%d packets, need >= %d)" % (rx_name, direct, min_pkts))
        t.needs_module("%s receives RTP from the relay" % rx_name)
    return relay, direct


def check_session_gone(t, kam, call_id, timeout=5):
    """After the call: no session left, no ports in use."""
    if not t.needs_module("session removed and ports released after the call"):
        return
    sess = wait_for(lambda: not any(s.get("call_id") == call_id
                                    for s in t.ice_sessions(kam)), timeout)
    t.check(sess, "ice.sessions no longer lists %s" % call_id,
            detail=json.dumps(t.ice_sessions(kam)) if not sess else None)
    ok = wait_for(lambda: kam.rpc("ice.ports").get("in_use") == 0, timeout)
    t.check(ok, "ice.ports in_use back to 0",
            detail=json.dumps(kam.rpc("ice.ports")) if not ok else None)
    st = kam.rpc("ice.stats")
    t.check(st.get("sessions_active") == 0 and st.get("ports_in_use") == 0,
            "ice.stats: sessions_active == 0 and ports_in_use == 0",
            detail=json.dumps(st))


def check_manage_rcs(t, kam, call_id, expect):
    """The script logs "ICETEST ice_manage rc=N msg=X cid=..." after each
    ice_manage(); expect is a list of (msg, rc) in order, e.g.
    [("INVITE", 1), ("200", 1)]."""
    if not t.needs_module("ice_manage return codes for %s" % call_id):
        return
    rx = re.compile(r"ICETEST ice_manage rc=(-?\d+) msg=(\S+) cid=%s$" %
                    re.escape(call_id))
    got = []
    for ln in kam.log_text().splitlines():
        m = rx.search(ln)
        if m:
            got.append((m.group(2), int(m.group(1))))
    t.check(got == expect, "ice_manage calls and return codes: %s" % got,
            detail="expected %s" % expect)


def check_kamailio_healthy(t, kam):
    t.check(kam.alive(), "kamailio still running at the end of the test",
            detail=None if kam.alive() else tail(kam.logfile, 30))
    bad = kam.log_lines(r"CRITICAL|\bBUG\b|segfault|core dumped")
    t.check(not bad, "no CRITICAL/BUG lines in kamailio's log",
            detail="\n".join(bad[:10]))


def addr_str(v):
    """An address from an RPC field, whatever its shape, as "ip:port"."""
    if v is None:
        return ""
    if isinstance(v, dict):
        ip = v.get("ip") or v.get("addr") or v.get("address") or v.get("host")
        return "%s:%s" % (ip, v.get("port"))
    if isinstance(v, (list, tuple)):
        return ",".join(addr_str(x) for x in v)
    return str(v)


def session_components(session):
    """[(leg, stream, component)] of an ice.session result."""
    out = []
    for leg in (session or {}).get("legs", []) or []:
        for st in leg.get("streams", []) or []:
            for c in st.get("components", []) or []:
                out.append((leg, st, c))
    return out


LOOPBACK = "127.0.0.1"
UAC_SIP, UAC_MEDIA = 5070, 6000
UAS_SIP, UAS_MEDIA = 5091, 7000
KAM_SIP = 5060


def media_counters(ns, rx_ports, relay_ip):
    """For each receiver name -> media port: <name>_relay counts UDP that
    arrives from relay_ip with a source port in the relay range,
    <name>_all all UDP to that port."""
    c = NftCounters(ns)
    for name, port in rx_ports.items():
        c.add(name + "_relay", "ip saddr %s udp sport %d-%d udp dport %d" %
              (relay_ip, RELAY_PORT_MIN, RELAY_PORT_MAX, port))
        c.add(name + "_all", "udp dport %d" % port)
    return c


def loopback_setup(t):
    """One namespace, everything on 127.0.0.1: kamailio :5060 (+ relay),
    callee sipp :5091 media 7000, caller sipp :5070 media 6000."""
    ns = Netns(t, "lo")
    cnt = media_counters(ns, {"uac": UAC_MEDIA, "uas": UAS_MEDIA}, LOOPBACK)
    kam = t.kamailio(ns, LOOPBACK, "%s:%d" % (LOOPBACK, UAS_SIP),
                     listen_port=KAM_SIP)
    kam.start()
    return ns, kam, cnt


def wait_relayed(t, kam, call_id, min_pkts, timeout):
    """Poll ice.session until every leg has relayed min_pkts each way
    (module runs) or just sleep (proxy-only). Returns the last session."""
    if not t.has_module:
        time.sleep(timeout / 2.0)
        return None
    last = [None]

    def enough():
        try:
            last[0] = t.ice_session(kam, call_id)
        except RpcError:
            return False
        legs = leg_totals(last[0])
        return len(legs) >= 2 and all(
            tot["packets_in"] >= min_pkts and tot["packets_out"] >= min_pkts
            for _, _, tot in legs)
    wait_for(enough, timeout, interval=0.25)
    return last[0]


# --------------------------------------------------------------------------
# entry point

def _sigterm(signum, frame):
    raise SystemExit(128 + signum)


def main(test_fn, name):
    """Run one test with guaranteed cleanup. Exit 0 pass, 1 fail."""
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGHUP, _sigterm)
    if os.geteuid() != 0:
        print("FAIL %s: integration tests need root (netns, nft)" % name)
        return 1
    t = None
    rc = 1
    started = time.monotonic()
    try:
        cleanup_stale_namespaces()
        t = Test(name)
        t.log("module: %s" % (t.ice_so or "NONE (proxy-only run)"))
        test_fn(t)
    except TestError as e:
        if t:
            t.failures.append(str(e).splitlines()[0])
        print("  [%s] ERROR %s" % (name, e))
    except SystemExit as e:
        print("  [%s] interrupted (%s)" % (name, e))
        if t:
            t.failures.append("interrupted")
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        if t:
            t.failures.append("exception: %s" % sys.exc_info()[1])
    finally:
        if t is not None:
            if t.failures:
                try:
                    t.diagnostics()
                except Exception as e:  # noqa: BLE001
                    print("  [%s] diagnostics failed: %s" % (name, e))
            t.run_cleanups()
    dur = time.monotonic() - started
    if t is None:
        print("RESULT %s FAIL (setup) %.1fs" % (name, dur))
        return 1
    if t.failures:
        print("RESULT %s FAIL %.1fs: %d failed check(s): %s; logs in %s" % (
            name, dur, len(t.failures), "; ".join(t.failures[:5]), t.dir))
        rc = 1
    else:
        extra = ""
        if t.skipped:
            extra = " (proxy-only: %d module check(s) skipped)" % \
                len(t.skipped)
        print("RESULT %s PASS %.1fs: %d checks%s" %
              (name, dur, t.passed, extra))
        rc = 0
    return rc
