#!/usr/bin/python3
"""ice-bench driver: relays the same RTP load through kamailio-ice, through
rtpengine (Debian's rtpengine-daemon, userspace only) and through a floor
relay (ice-bench --floor-relay; with --only ...,floor-uring also its io_uring
variant, --floor-relay --uring), then measures call set-up cost with sipp
through Kamailio with ice_manage("force") and with rtpengine_manage
("ICE=force"), and prints the tables.

Everything runs inside a network namespace this script creates
("icebench"), on its loopback only: no port of the host is used and other
people's tests on the machine cannot collide with ours. The relay (all
Kamailio processes, rtpengine, or the floor relay) is pinned to CPU 0, the
load generator and sipp to CPU 1.

  bench.py [--quick] [--calls 250,500,1000,2000] [--only ice,rtpengine,floor]
           [--no-relay] [--no-setup] [--bench PATH] [--module PATH] ...
           (--help lists every option)

`make bench` / `make bench-quick` call it (mk/bench.mk).
"""

import argparse
import json
import os
import random
import re
import resource
import select
import signal
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
NS = "icebench"
LO = "127.0.0.1"
KAM_SIP, UAC_SIP, UAS_SIP, NG_PORT = 5060, 5070, 5090, 2223
RELAY_MIN, RELAY_MAX = 20000, 39999   # 4 ports a call: 5000 calls
GEN_A0, GEN_B0 = 40000, 44000          # generator's A and B ports
EPHEMERAL = "50000 60999"              # the namespace's, away from the above
KAMAILIO = os.environ.get("KAMAILIO", "/usr/sbin/kamailio")
KAM_MPATH = os.environ.get("KAM_MPATH",
                           "/usr/lib/x86_64-linux-gnu/kamailio/modules/")
RTPENGINE = os.environ.get("RTPENGINE", "/usr/bin/rtpengine")
SIPP = os.environ.get("SIPP", "/usr/bin/sipp")
RELAY_CPU, GEN_CPU = "0", "1"
# descriptors for relays: 4 sockets a call, as many as the hard limit allows
NOFILE = min(65536, resource.getrlimit(resource.RLIMIT_NOFILE)[1])


def log(msg):
    sys.stdout.write("[bench %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stdout.flush()


class BenchError(Exception):
    pass


def wait_for(pred, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def raise_nofile():
    """preexec for relays: enough descriptors for 4 sockets a call."""
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
    except (ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def proc_ticks(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    fields = s[s.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])   # utime, stime


def cpu_seconds(pids):
    hz = os.sysconf("SC_CLK_TCK")
    tot = 0
    for p in pids:
        t = proc_ticks(p)
        if t is not None:
            tot += t
    return tot / float(hz)


def children_of(pid):
    """pid and every process below it (Kamailio forks from main)."""
    out, todo = [pid], [pid]
    while todo:
        parent = todo.pop()
        try:
            kids = open("/proc/%d/task/%d/children" % (parent, parent)).read()
        except OSError:
            kids = ""
        for k in kids.split():
            out.append(int(k))
            todo.append(int(k))
    return out


class Procs:
    """Processes this run started (each in its own session), stopped by
    pid at the end."""

    def __init__(self):
        self.procs = []

    def start(self, argv, logpath, **kw):
        fh = open(logpath, "wb")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=fh,
                             stderr=subprocess.STDOUT,
                             start_new_session=True, **kw)
        p._fh = fh
        self.procs.append(p)
        return p

    def stop(self, p, timeout=5):
        if p is None:
            return
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(p.pid, signal.SIGKILL)   # Kamailio's children
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        try:
            p._fh.close()
        except Exception:  # noqa: BLE001
            pass
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self):
        for p in list(self.procs):
            self.stop(p, timeout=2)


PROCS = Procs()


def tail(path, n=30):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


# --------------------------------------------------------------------------
# Kamailio

KAM_CFG = r"""#!KAMAILIO
# generated by utils/ice-bench/bench.py
%(defines)s
debug=0
log_stderror=yes
fork=yes
children=%(children)d
disable_tcp=yes
auto_aliases=no
listen=udp:%(ip)s:%(port)d
alias="%(ip)s:%(port)d"
dns=no
rev_dns=no
use_dns_cache=no
open_files_limit=%(nofile)d

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

modparam("jsonrpcs", "transport", 4)
modparam("jsonrpcs", "dgram_socket", "%(rpc_sock)s")
modparam("ctl", "binrpc", "unix:%(ctl_sock)s")
modparam("tm", "fr_timer", 5000)
modparam("tm", "fr_inv_timer", 20000)
modparam("tm", "wt_timer", 1000)

#!ifdef NO_MEDIA
#!else
#!ifdef WITH_ICE
loadmodule "%(ice_so)s"
modparam("ice", "port_min", %(port_min)d)
modparam("ice", "port_max", %(port_max)d)
modparam("ice", "interface", "pub/%(ip)s")
modparam("ice", "forwarders", %(forwarders)d)
modparam("ice", "media_timeout", 3600)
#!define MANAGE ice_manage
#!define DELETE ice_delete
#!else
loadmodule "rtpengine.so"
modparam("rtpengine", "rtpengine_sock", "udp:%(ip)s:%(ng_port)d")
#!define MANAGE rtpengine_manage
#!define DELETE rtpengine_delete
#!endif
#!endif

request_route {
	if(!mf_process_maxfwd_header("10")) {
		sl_send_reply("483", "Too Many Hops");
		exit;
	}
	if(has_totag()) {
		if(loose_route()) {
			route(MEDIA);
			route(RELAY);
		}
		if(is_method("ACK") && t_check_trans()) {
			t_relay();
			exit;
		}
		sl_send_reply("404", "Not here");
		exit;
	}
	if(is_method("CANCEL")) {
		if(t_check_trans()) {
			route(MEDIA);
			t_relay();
		}
		exit;
	}
	if(is_method("ACK"))
		exit;
	t_check_trans();
	if(is_method("INVITE"))
		record_route();
	route(MEDIA);
	route(RELAY);
}

route[MEDIA] {
#!ifndef NO_MEDIA
	if(is_method("BYE|CANCEL")) {
		DELETE();
		return;
	}
	if(has_body("application/sdp")) {
		if(MANAGE("%(flags)s") < 0)
			xlog("L_ERR", "BENCH manage failed for $rm $ci\n");
	}
#!endif
	if(is_method("INVITE")) {
		t_on_reply("MREPLY");
		t_on_failure("MFAIL");
	}
}

route[RELAY] {
	if(!t_relay())
		sl_reply_error();
	exit;
}

onreply_route[MREPLY] {
#!ifndef NO_MEDIA
	if(status =~ "^(18[0-9]|2[0-9][0-9])$" && has_body("application/sdp")) {
		if(MANAGE("%(flags)s") < 0)
			xlog("L_ERR", "BENCH manage failed on reply $rs $ci\n");
	}
#!else
	$var(nomedia) = 1;
#!endif
}

failure_route[MFAIL] {
#!ifndef NO_MEDIA
	DELETE();
#!else
	$var(nomedia) = 1;
#!endif
}
"""


class Kamailio:
    mm = ""     # --kam-mm: Kamailio's memory manager (-x/-X), "" = its default
    forwarders = 1  # --forwarders: the ice module's forwarder processes
    def __init__(self, wdir, flags, ice_so=None, children=4, shm_mb=512,
                 media=True):
        self.dir = wdir
        os.makedirs(os.path.join(wdir, "run"), exist_ok=True)
        self.rpc_sock = os.path.join(wdir, "run", "rpc.sock")
        self.ctl_sock = os.path.join(wdir, "run", "ctl.sock")
        self.cfg = os.path.join(wdir, "kamailio.cfg")
        self.logfile = os.path.join(wdir, "kamailio.log")
        self.shm_mb = shm_mb
        self.proc = None
        self.n = 0
        if len(self.rpc_sock) > 100:
            raise BenchError("work dir %s too long for unix sockets" % wdir)
        with open(self.cfg, "w") as f:
            f.write(KAM_CFG % {
                "defines": ("#!define WITH_ICE" if ice_so else "") +
                ("" if media else "\n#!define NO_MEDIA"),
                "children": children, "ip": LO, "port": KAM_SIP,
                "nofile": NOFILE, "mpath": KAM_MPATH,
                "rpc_sock": self.rpc_sock, "ctl_sock": self.ctl_sock,
                "ice_so": ice_so or "", "port_min": RELAY_MIN,
                "port_max": RELAY_MAX, "ng_port": NG_PORT, "flags": flags,
                "forwarders": Kamailio.forwarders})

    def start(self):
        argv = [KAMAILIO, "-f", self.cfg, "-Y", os.path.join(self.dir, "run"),
                "-w", self.dir, "-m", str(self.shm_mb), "-M", "16"]
        if Kamailio.mm:
            argv += ["-x", Kamailio.mm, "-X", Kamailio.mm]
        r = subprocess.run(argv + ["-c"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=30)
        if r.returncode != 0:
            raise BenchError("kamailio config check failed:\n" +
                             "\n".join(r.stdout.splitlines()[-20:]))
        self.proc = PROCS.start(["taskset", "-c", RELAY_CPU] + argv +
                                ["-DD", "-E"], self.logfile,
                                preexec_fn=raise_nofile)

        def ready():
            if self.proc.poll() is not None:
                raise BenchError("kamailio exited (rc %s):\n%s" %
                                 (self.proc.returncode, tail(self.logfile)))
            try:
                return os.path.exists(self.rpc_sock) and \
                    self.rpc("core.version", timeout=1) is not None
            except (OSError, ValueError, BenchError):
                return False
        if not wait_for(ready, 15):
            raise BenchError("kamailio not ready:\n" + tail(self.logfile))
        time.sleep(0.5)

    def stop(self):
        PROCS.stop(self.proc)

    def rpc(self, method, *params, timeout=5):
        self.n += 1
        client = os.path.join(self.dir, "run", "c%d.sock" % os.getpid())
        try:
            os.unlink(client)
        except FileNotFoundError:
            pass
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            s.bind(client)
            s.settimeout(timeout)
            req = {"jsonrpc": "2.0", "method": method, "id": self.n}
            if params:
                req["params"] = list(params)
            s.sendto(json.dumps(req).encode(), self.rpc_sock)
            while True:
                rep = json.loads(s.recv(1 << 22).decode("utf-8", "replace"))
                if rep.get("id") == self.n:
                    break
        finally:
            s.close()
            try:
                os.unlink(client)
            except FileNotFoundError:
                pass
        if "error" in rep:
            raise BenchError("%s: %s" % (method, rep["error"]))
        return rep.get("result")

    def pids(self):
        return children_of(self.proc.pid)

    def forwarder_pids(self):
        out = []
        for p in self.rpc("core.psx") or []:
            if "FORWARDER" in str(p.get("DSC", "")):
                out.append(int(p["PID"]))
        return out

    def shm(self):
        return self.rpc("core.shmmem")

    def tm_current(self):
        st = self.rpc("tm.stats") or {}
        return int(st.get("current", 0))

    def settle(self, timeout=20):
        """Wait until no transaction is left (wt_timer 1 s)."""
        return wait_for(lambda: self.tm_current() == 0, timeout, 0.25)


# --------------------------------------------------------------------------
# a minimal SIP UAC and UAS over UDP (kamailio-ice relay runs)

def sdp_body(port, sess):
    return ("v=0\r\no=- %d 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n"
            "m=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
            "a=sendrecv\r\n" % (sess, LO, LO, port))


def sdp_dest(body):
    """(address, port) of the first audio m-line."""
    addr, port, in_audio = None, None, False
    for ln in body.replace("\r\n", "\n").split("\n"):
        if ln.startswith("m="):
            parts = ln[2:].split()
            in_audio = parts and parts[0] == "audio" and port is None
            if in_audio:
                port = int(parts[1])
        elif ln.startswith("c=") and (addr is None or in_audio):
            addr = ln.split()[-1]
    return addr, port


COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id",
           "m": "contact", "l": "content-length", "c": "content-type"}


def parse_sip(data):
    head, _, body = data.decode("utf-8", "replace").partition("\r\n\r\n")
    lines = head.split("\r\n")
    hdrs = []
    for ln in lines[1:]:
        if ":" in ln:
            k, v = ln.split(":", 1)
            k = k.strip().lower()
            hdrs.append((COMPACT.get(k, k), v.strip()))
    return lines[0], hdrs, body


def hget(hdrs, name):
    for k, v in hdrs:
        if k == name:
            return v
    return None


def hall(hdrs, name):
    """Every value of a header, one per header line, in order."""
    return [v for k, v in hdrs if k == name]


def uris(values):
    """Split Record-Route values ("<a>, <b>") into single entries."""
    out = []
    for v in values:
        out.extend(x.strip() for x in re.findall(r"<[^>]+>[^,]*", v))
    return out


def build(start, hdrs, body=""):
    msg = start + "\r\n" + "".join("%s: %s\r\n" % kv for kv in hdrs)
    msg += "Content-Length: %d\r\n\r\n%s" % (len(body.encode()), body)
    return msg.encode()


class SipLoad:
    """Sets up and tears down N calls through Kamailio: UAC on UAC_SIP sends
    INVITE (SDP: A port) to Kamailio, which relays it to the UAS on UAS_SIP;
    the UAS answers 200 (SDP: B port); the UAC ACKs along the Record-Route
    set. Each call's relay addresses come from the rewritten SDPs."""

    WINDOW = 64

    def __init__(self, tag):
        self.tag = tag
        self.uac = self._sock(UAC_SIP)
        self.uas = self._sock(UAS_SIP)
        self.calls = {}
        self.uas_calls = {}

    @staticmethod
    def _sock(port):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)   # SO_RCVBUFFORCE
        except OSError:
            pass
        s.bind((LO, port))
        s.setblocking(False)
        return s

    def close(self):
        self.uac.close()
        self.uas.close()

    def _invite(self, c):
        c["branch"] = "z9hG4bK-%s-%d" % (c["cid"], c["tries"])
        hdrs = [("Via", "SIP/2.0/UDP %s:%d;branch=%s;rport" %
                 (LO, UAC_SIP, c["branch"])),
                ("Max-Forwards", "70"),
                ("From", "<sip:uac@%s:%d>;tag=%s" % (LO, UAC_SIP, c["ftag"])),
                ("To", "<sip:uas@%s:%d>" % (LO, UAS_SIP)),
                ("Call-ID", c["cid"]), ("CSeq", "1 INVITE"),
                ("Contact", "<sip:uac@%s:%d>" % (LO, UAC_SIP)),
                ("Content-Type", "application/sdp")]
        self.uac.sendto(build("INVITE sip:uas@%s:%d SIP/2.0" % (LO, UAS_SIP),
                              hdrs, sdp_body(c["a"], c["i"] + 1000)),
                        (LO, KAM_SIP))
        c["sent"] = time.monotonic()

    def _in_dialog(self, c, method, cseq):
        hdrs = [("Via", "SIP/2.0/UDP %s:%d;branch=z9hG4bK-%s-%s%d;rport" %
                 (LO, UAC_SIP, c["cid"], method.lower(), c["tries"])),
                ("Max-Forwards", "70")]
        hdrs += [("Route", r) for r in c["routes"]]
        hdrs += [("From", "<sip:uac@%s:%d>;tag=%s" % (LO, UAC_SIP, c["ftag"])),
                 ("To", c["to"]), ("Call-ID", c["cid"]),
                 ("CSeq", "%d %s" % (cseq, method))]
        self.uac.sendto(build("%s %s SIP/2.0" % (method, c["target"]), hdrs),
                        (LO, KAM_SIP))
        c["sent"] = time.monotonic()

    def _uas_reply(self, data, src):
        start, hdrs, body = parse_sip(data)
        method = start.split(" ", 1)[0]
        if start.startswith("SIP/2.0"):
            return
        cid = hget(hdrs, "call-id")
        if method == "ACK":
            return
        if method == "INVITE":
            u = self.uas_calls.get(cid)
            if u is None:
                c = self.calls.get(cid)
                if c is None:
                    return
                addr, port = sdp_dest(body)
                c["relay_b"] = (addr, port)
                u = self.uas_calls[cid] = {"ttag": "s%x" % random.getrandbits(32)}
                rhdrs = [("Via", v) for v in hall(hdrs, "via")]
                rhdrs += [("Record-Route", v)
                          for v in hall(hdrs, "record-route")]
                rhdrs += [("From", hget(hdrs, "from")),
                          ("To", hget(hdrs, "to") + ";tag=" + u["ttag"]),
                          ("Call-ID", cid), ("CSeq", hget(hdrs, "cseq")),
                          ("Contact", "<sip:uas@%s:%d>" % (LO, UAS_SIP)),
                          ("Content-Type", "application/sdp")]
                u["resp"] = build("SIP/2.0 200 OK", rhdrs,
                                  sdp_body(c["b"], c["i"] + 5000))
            self.uas.sendto(u["resp"], src)
            return
        # BYE or anything else: 200
        rhdrs = [("Via", v) for v in hall(hdrs, "via")]
        rhdrs += [("From", hget(hdrs, "from")), ("To", hget(hdrs, "to")),
                  ("Call-ID", cid), ("CSeq", hget(hdrs, "cseq"))]
        self.uas.sendto(build("SIP/2.0 200 OK", rhdrs), src)

    def _uac_response(self, data):
        start, hdrs, body = parse_sip(data)
        m = re.match(r"SIP/2\.0 (\d+)", start)
        if not m:
            return
        code = int(m.group(1))
        c = self.calls.get(hget(hdrs, "call-id"))
        if c is None or code < 200:
            return
        meth = (hget(hdrs, "cseq") or " ").split()[-1]
        if meth == "INVITE":
            if code >= 300:
                c["state"] = "failed"
                c["why"] = start
                return
            if c["state"] == "inviting":
                c["to"] = hget(hdrs, "to")
                c["routes"] = list(reversed(uris(hall(hdrs,
                                                      "record-route"))))
                ct = hget(hdrs, "contact") or ""
                mm = re.search(r"<([^>]+)>", ct)
                c["target"] = mm.group(1) if mm else ct.split(";")[0]
                c["relay_a"] = sdp_dest(body)
                c["state"] = "up"
            self._in_dialog(c, "ACK", 1)
        elif meth == "BYE" and c["state"] == "byeing":
            c["state"] = "done"

    def _pump(self, timeout):
        r, _, _ = select.select([self.uac, self.uas], [], [], timeout)
        for s in r:
            for _ in range(256):
                try:
                    data, src = s.recvfrom(65535)
                except BlockingIOError:
                    break
                if s is self.uas:
                    self._uas_reply(data, src)
                else:
                    self._uac_response(data)

    def _run(self, todo, send, busy_state, done_states, deadline, what):
        """Keep WINDOW transactions in flight until all of todo are done."""
        pending = list(todo)
        active = []
        while pending or active:
            if time.monotonic() > deadline:
                raise BenchError("%s: %d calls unfinished at the deadline" %
                                 (what, len(pending) + len(active)))
            while pending and len(active) < self.WINDOW:
                c = pending.pop(0)
                c["tries"] = 0
                c["state"] = busy_state
                send(c)
                active.append(c)
            self._pump(0.05)
            now = time.monotonic()
            still = []
            for c in active:
                if c["state"] in done_states:
                    continue
                if now - c["sent"] > 2.0:
                    c["tries"] += 1
                    if c["tries"] > 4:
                        c["state"] = "failed"
                        c["why"] = "no answer"
                        continue
                    send(c)
                still.append(c)
            active = still

    def setup(self, n, timeout):
        for i in range(n):
            cid = "ib-%s-%d-%x" % (self.tag, i, random.getrandbits(32))
            self.calls[cid] = {"i": i, "cid": cid, "a": GEN_A0 + i,
                               "b": GEN_B0 + i, "state": "new",
                               "ftag": "u%x" % random.getrandbits(32)}
        t0 = time.monotonic()
        self._run(list(self.calls.values()), self._invite, "inviting",
                  ("up", "failed"), t0 + timeout, "INVITE")
        dt = time.monotonic() - t0
        bad = [c for c in self.calls.values() if c["state"] != "up"
               or not c.get("relay_b") or not c.get("relay_a")]
        if bad:
            raise BenchError("%d of %d calls not set up (first: %s)" %
                             (len(bad), n, bad[0].get("why", bad[0]["state"])))
        # absorb late duplicates
        self._pump(0.2)
        return dt

    def legs(self):
        out = []
        for c in sorted(self.calls.values(), key=lambda c: c["i"]):
            out.append((c["a"], c["relay_a"], c["b"], c["relay_b"]))
        return out

    def teardown(self, timeout):
        up = [c for c in self.calls.values() if c["state"] == "up"]
        self._run(up, lambda c: self._in_dialog(c, "BYE", 2), "byeing",
                  ("done", "failed"), time.monotonic() + timeout, "BYE")
        self._pump(0.2)
        return sum(1 for c in up if c["state"] == "done")


# --------------------------------------------------------------------------
# rtpengine: daemon + ng protocol (bencode over UDP)

def benc(x):
    if isinstance(x, int):
        return b"i%de" % x
    if isinstance(x, str):
        x = x.encode()
    if isinstance(x, bytes):
        return b"%d:%s" % (len(x), x)
    if isinstance(x, list):
        return b"l" + b"".join(benc(v) for v in x) + b"e"
    if isinstance(x, dict):
        return b"d" + b"".join(benc(k) + benc(x[k]) for k in sorted(x)) + b"e"
    raise TypeError(type(x))


def bdec(b, i=0):
    c = b[i:i + 1]
    if c == b"i":
        j = b.index(b"e", i)
        return int(b[i + 1:j]), j + 1
    if c == b"l":
        out, i = [], i + 1
        while b[i:i + 1] != b"e":
            v, i = bdec(b, i)
            out.append(v)
        return out, i + 1
    if c == b"d":
        out, i = {}, i + 1
        while b[i:i + 1] != b"e":
            k, i = bdec(b, i)
            v, i = bdec(b, i)
            out[k.decode()] = v
        return out, i + 1
    j = b.index(b":", i)
    n = int(b[i:j])
    return b[j + 1:j + 1 + n], j + 1 + n


class Rtpengine:
    threads = 0   # --num-threads, 0 = rtpengine's default (one per CPU)

    def __init__(self, wdir, port_min=RELAY_MIN, port_max=RELAY_MAX):
        self.dir = wdir
        os.makedirs(wdir, exist_ok=True)
        self.logfile = os.path.join(wdir, "rtpengine.log")
        self.argv = [RTPENGINE, "--table=-1", "--interface=%s" % LO,
                     "--listen-ng=%s:%d" % (LO, NG_PORT),
                     "--port-min=%d" % port_min, "--port-max=%d" % port_max,
                     "--foreground", "--log-stderr", "--log-level=4",
                     "--timeout=3600", "--silent-timeout=3600",
                     "--final-timeout=0", "--delete-delay=0",
                     "--pidfile=%s" % os.path.join(wdir, "rtpengine.pid")]
        if Rtpengine.threads:
            self.argv.append("--num-threads=%d" % Rtpengine.threads)
        self.proc = None
        self.sock = None
        self.seq = 0

    def start(self):
        self.proc = PROCS.start(["taskset", "-c", RELAY_CPU] + self.argv,
                                self.logfile, preexec_fn=raise_nofile)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LO, 0))

        def pong():
            if self.proc.poll() is not None:
                raise BenchError("rtpengine exited (rc %s):\n%s" %
                                 (self.proc.returncode, tail(self.logfile)))
            try:
                return self.ng([{"command": "ping"}], timeout=0.5)[0] \
                    .get("result") == b"pong"
            except BenchError:
                return False
        if not wait_for(pong, 15, 0.2):
            raise BenchError("rtpengine not answering ng:\n" +
                             tail(self.logfile))

    def stop(self):
        if self.sock:
            self.sock.close()
            self.sock = None
        PROCS.stop(self.proc)

    def pids(self):
        return [self.proc.pid]   # /proc/PID/stat sums all its threads

    def ng(self, reqs, window=64, timeout=5.0):
        """Send ng commands, WINDOW in flight, retransmitting; replies in
        order."""
        out = [None] * len(reqs)
        sent = {}
        nxt = 0
        deadline = time.monotonic() + timeout + len(reqs) / 200.0
        while nxt < len(reqs) or sent:
            if time.monotonic() > deadline:
                raise BenchError("ng: %d requests unanswered" %
                                 (len(reqs) - nxt + len(sent)))
            while nxt < len(reqs) and len(sent) < window:
                self.seq += 1
                cookie = b"%d_%d" % (os.getpid(), self.seq)
                pkt = cookie + b" " + benc(reqs[nxt])
                sent[cookie] = [nxt, pkt, time.monotonic()]
                self.sock.sendto(pkt, (LO, NG_PORT))
                nxt += 1
            r, _, _ = select.select([self.sock], [], [], 0.05)
            if r:
                data = self.sock.recv(65535)
                cookie, _, rest = data.partition(b" ")
                if cookie in sent:
                    out[sent.pop(cookie)[0]] = bdec(rest)[0]
            now = time.monotonic()
            for ck, v in sent.items():
                if now - v[2] > 1.0:
                    v[2] = now
                    self.sock.sendto(v[1], (LO, NG_PORT))
        return out

    def setup(self, n, tag):
        calls = []
        for i in range(n):
            calls.append({"cid": "ib-%s-%d-%x" % (tag, i,
                                                 random.getrandbits(32)),
                          "ft": "f%d" % i, "tt": "t%d" % i,
                          "a": GEN_A0 + i, "b": GEN_B0 + i})
        common = {"flags": ["trust-address"], "ICE": "remove",
                  "replace": ["origin", "session-connection"]}
        offers = [dict(common, command="offer", sdp=sdp_body(c["a"], i + 1000),
                       **{"call-id": c["cid"], "from-tag": c["ft"]})
                  for i, c in enumerate(calls)]
        t0 = time.monotonic()
        for c, rep in zip(calls, self.ng(offers)):
            if rep.get("result") != b"ok":
                raise BenchError("offer failed: %s" % rep)
            c["relay_b"] = sdp_dest(rep["sdp"].decode())
        answers = [dict(common, command="answer",
                        sdp=sdp_body(c["b"], i + 5000),
                        **{"call-id": c["cid"], "from-tag": c["ft"],
                           "to-tag": c["tt"]})
                   for i, c in enumerate(calls)]
        for c, rep in zip(calls, self.ng(answers)):
            if rep.get("result") != b"ok":
                raise BenchError("answer failed: %s" % rep)
            c["relay_a"] = sdp_dest(rep["sdp"].decode())
        self.calls = calls
        return time.monotonic() - t0

    def legs(self):
        return [(c["a"], c["relay_a"], c["b"], c["relay_b"])
                for c in self.calls]

    def teardown(self):
        reps = self.ng([{"command": "delete", "call-id": c["cid"],
                         "from-tag": c["ft"]} for c in self.calls])
        return sum(1 for r in reps if r.get("result") == b"ok")

    def calls_active(self):
        rep = self.ng([{"command": "list"}], timeout=2)[0]
        return len(rep.get("calls", []))


# --------------------------------------------------------------------------
# relay benchmark

def write_legs(path, legs):
    with open(path, "w") as f:
        for a, ra, b, rb in legs:
            f.write("%d %s:%d %d %s:%d\n" % (a, ra[0], ra[1], b, rb[0], rb[1]))


def run_generator(bench, legs_path, groups, warmup, duration, logpath):
    argv = [bench, "--json", "--cpu", GEN_CPU, "--warmup", str(warmup),
            "--duration", str(duration)]
    for name, pids in groups:
        argv += ["--cpu-group", "%s:%s" % (name, ",".join(map(str, pids)))]
    argv.append(legs_path)
    with open(logpath, "wb") as err:
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=err,
                           timeout=warmup + duration + 60,
                           preexec_fn=raise_nofile)
    if r.returncode != 0:
        raise BenchError("ice-bench failed (rc %d): %s" %
                         (r.returncode, tail(logpath)))
    return json.loads(r.stdout.decode().strip().splitlines()[-1])


def relay_ice(args, n, wdir):
    kam = Kamailio(wdir, "remove", ice_so=args.module)
    res = {"backend": "kamailio-ice", "n": n}
    sip = None
    try:
        kam.start()
        kam.settle()
        shm0 = kam.shm()
        sip = SipLoad("r%d" % n)
        dt = sip.setup(n, timeout=60 + n / 20.0)
        res["setup_cps"] = n / dt
        kam.settle()
        time.sleep(0.5)
        shm1 = kam.shm()
        st = kam.rpc("ice.stats")
        res["sessions"] = st.get("sessions_active")
        res["shm_used0"], res["shm_used1"] = shm0["used"], shm1["used"]
        res["shm_real0"], res["shm_real1"] = shm0["real_used"], shm1["real_used"]
        legs_path = os.path.join(wdir, "legs.txt")
        write_legs(legs_path, sip.legs())
        pids = kam.pids()
        fwd = kam.forwarder_pids()
        log("kamailio-ice N=%d: %d calls up in %.1f s (%.0f cps), %d "
            "kamailio processes, forwarder %s" % (n, n, dt, n / dt, len(pids),
                                                 fwd))
        g = run_generator(args.bench, legs_path,
                          [("kamailio", pids), ("forwarder", fwd)],
                          args.warmup, args.duration,
                          os.path.join(wdir, "gen.log"))
        res["gen"] = g
        try:
            res["ice_stats"] = kam.rpc("ice.stats")
        except BenchError:
            pass
        ok = sip.teardown(timeout=60 + n / 20.0)
        res["bye_ok"] = ok
        wait_for(lambda: (kam.rpc("ice.stats") or {}).get(
            "sessions_active") == 0, 15, 0.25)
        kam.settle()
        time.sleep(0.5)
        shm2 = kam.shm()
        res["shm_used2"], res["shm_real2"] = shm2["used"], shm2["real_used"]
        bad = [ln for ln in tail(kam.logfile, 2000).splitlines()
               if re.search(r"CRITICAL|BUG|BENCH manage failed", ln)]
        res["log_problems"] = bad[:5]
    finally:
        if sip:
            sip.close()
        kam.stop()
    return res


def relay_rtpengine(args, n, wdir):
    rtp = Rtpengine(wdir)
    res = {"backend": "rtpengine", "n": n}
    try:
        rtp.start()
        dt = rtp.setup(n, "r%d" % n)
        res["setup_cps"] = n / dt
        legs_path = os.path.join(wdir, "legs.txt")
        write_legs(legs_path, rtp.legs())
        log("rtpengine N=%d: %d calls up in %.1f s (ng)" % (n, n, dt))
        res["gen"] = run_generator(args.bench, legs_path,
                                   [("rtpengine", rtp.pids())],
                                   args.warmup, args.duration,
                                   os.path.join(wdir, "gen.log"))
        res["deleted"] = rtp.teardown()
    finally:
        rtp.stop()
    return res


def relay_floor(args, n, wdir, uring=False):
    """The floor relay; uring: its io_uring variant (backend floor-uring)."""
    name = "floor-uring" if uring else "floor"
    legs = [(GEN_A0 + i, (LO, RELAY_MIN + 2 * i), GEN_B0 + i,
             (LO, RELAY_MIN + 2 * i + 1)) for i in range(n)]
    legs_path = os.path.join(wdir, "legs.txt")
    write_legs(legs_path, legs)
    logpath = os.path.join(wdir, name + ".log")
    p = PROCS.start(["taskset", "-c", RELAY_CPU, args.bench, "--floor-relay"] +
                    (["--uring"] if uring else []) +
                    ["--cpu", RELAY_CPU, legs_path], logpath,
                    preexec_fn=raise_nofile)
    try:
        if not wait_for(lambda: "floor relay up" in tail(logpath, 5) or
                        p.poll() is not None, 10):
            raise BenchError("floor relay not up: " + tail(logpath))
        if p.poll() is not None:
            raise BenchError("floor relay exited: " + tail(logpath))
        log("%s N=%d: relay up" % (name, n))
        return {"backend": name, "n": n,
                "gen": run_generator(args.bench, legs_path,
                                     [(name, [p.pid])], args.warmup,
                                     args.duration,
                                     os.path.join(wdir, "gen.log"))}
    finally:
        PROCS.stop(p)


def disturbed(r):
    """Why a relay run's figures cannot be trusted, [] if they can."""
    g = r.get("gen")
    if g is None:
        return ["failed"]
    why = []
    if g.get("skipped", 0) > 0.01 * max(g["sent"], 1):
        why.append("generator late: %.0f%% of slots skipped" %
                   (100.0 * g["skipped"] / (g["sent"] + g["skipped"])))
    if g.get("ring_drops", 0):
        why.append("generator ring drops %d" % g["ring_drops"])
    if g["loss_pct"] > 0.1 and g["groups"][0]["cpu_pct"] < 85:
        why.append("loss while the relay had CPU to spare: other load")
    return why


def relay_floor_uring(args, n, wdir):
    return relay_floor(args, n, wdir, uring=True)


# floor-uring (issue 5's io_uring experiment) only runs when --only names it
RELAYS = {"ice": relay_ice, "rtpengine": relay_rtpengine,
          "floor": relay_floor, "floor-uring": relay_floor_uring}
LABEL = {"ice": "kamailio-ice", "rtpengine": "rtpengine", "floor": "floor",
         "floor-uring": "floor-uring"}


# --------------------------------------------------------------------------
# call set-up cost with sipp

def sipp_stats(path):
    """Last line of sipp's -trace_stat CSV as a dict."""
    try:
        lines = [ln for ln in open(path).read().splitlines() if ln.strip()]
    except OSError:
        return {}
    if len(lines) < 2:
        return {}
    head = lines[0].split(";")
    vals = lines[-1].split(";")
    return dict(zip(head, vals))


def cpu_groups(groups):
    """{name: cpu seconds} for {name: [pids]}."""
    return {k: cpu_seconds(v) for k, v in groups.items()}


def sipp_run(wdir, name, rate, calls, groups_fn):
    """One sipp UAC run at `rate` cps for `calls` calls against the UAS
    already running; returns ok, failed, elapsed and the CPU seconds of
    each process group over the run."""
    d = os.path.join(wdir, name)
    os.makedirs(d, exist_ok=True)
    stf = os.path.join(d, "stat.csv")
    argv = ["taskset", "-c", GEN_CPU, SIPP, "%s:%d" % (LO, UAS_SIP),
            "-rsa", "%s:%d" % (LO, KAM_SIP), "-sf",
            os.path.join(HERE, "sipp", "uac_ice.xml"), "-i", LO, "-p",
            str(UAC_SIP), "-mi", LO, "-mp", "6000", "-r", str(rate), "-rp",
            "1000", "-m", str(calls), "-l", str(max(rate * 4, 50)),
            "-nostdin", "-trace_stat", "-stf", stf, "-fd", "1",
            "-recv_timeout", "5000", "-timeout",
            "%ds" % (calls // rate + 40), "-trace_err", "-error_file",
            os.path.join(d, "errors.log"), "-max_recv_loops", "10000",
            "-max_sched_loops", "10000"]
    groups = groups_fn()
    c0 = cpu_groups(groups)
    t0 = time.monotonic()
    p = PROCS.start(argv, os.path.join(d, "stdout.log"), cwd=d)
    try:
        p.wait(timeout=calls / rate + 60)
    except subprocess.TimeoutExpired:
        PROCS.stop(p)
        raise BenchError("sipp %s did not finish" % name)
    elapsed = time.monotonic() - t0
    c1 = cpu_groups(groups)
    PROCS.stop(p)
    st = sipp_stats(stf)
    ok = int(st.get("SuccessfulCall(C)", 0) or 0)
    failed = int(st.get("FailedCall(C)", 0) or 0)
    if ok + failed == 0:
        raise BenchError("sipp %s: no statistics (rc %s): %s" %
                         (name, p.returncode,
                          tail(os.path.join(d, "stdout.log"))))
    return {"rate": rate, "ok": ok, "failed": failed, "elapsed": elapsed,
            "fail_pct": 100.0 * failed / (ok + failed),
            # calls are 1 s long: the last one ends ~1 s after it starts
            "achieved": (ok + failed) / max(elapsed - 1.0, 0.5),
            "cpu": {k: c1[k] - c0[k] for k in c0}}


def setup_cost(args, backend, wdir, ramp=True, rate=None):
    """Kamailio + (our module | rtpengine module and daemon) with ICE=force
    at a fixed rate, then (ramp) a ramp."""
    res = {"backend": backend, "steps": []}
    rtp = None
    if backend == "kamailio-ice":
        kam = Kamailio(os.path.join(wdir, "kam"), "force", ice_so=args.module)
    elif backend == "proxy-only":
        kam = Kamailio(os.path.join(wdir, "kam"), "", media=False)
    else:
        kam = Kamailio(os.path.join(wdir, "kam"), "ICE=force")
        rtp = Rtpengine(os.path.join(wdir, "rtpengine"))
    uas = None
    try:
        if rtp:
            rtp.start()
        kam.start()
        uas = PROCS.start(["taskset", "-c", GEN_CPU, SIPP, "-sf",
                           os.path.join(HERE, "sipp", "uas_ice.xml"), "-i", LO,
                           "-p", str(UAS_SIP), "-mi", LO, "-mp", "6100",
                           "-nostdin", "-max_recv_loops", "10000",
                           "-max_sched_loops", "10000"],
                          os.path.join(wdir, "uas.log"), cwd=wdir)
        time.sleep(1.0)
        if uas.poll() is not None:
            raise BenchError("sipp UAS exited: " +
                             tail(os.path.join(wdir, "uas.log")))
        fwd = kam.forwarder_pids() if backend == "kamailio-ice" else []

        def groups():
            g = {"kamailio": kam.pids()}
            if rtp:
                g["rtpengine"] = rtp.pids()
            elif fwd:
                g["forwarder"] = fwd
            return g

        def drained():
            if rtp:
                return rtp.calls_active() == 0
            if backend == "proxy-only":
                return kam.tm_current() == 0
            return (kam.rpc("ice.stats") or {}).get("sessions_active") == 0

        # what the processes cost doing nothing, for reference
        g = groups()
        c0 = cpu_groups(g)
        time.sleep(args.idle_secs)
        c1 = cpu_groups(g)
        res["idle_cpu_per_s"] = {k: (c1[k] - c0[k]) / args.idle_secs
                                 for k in c0}
        rate = rate or args.setup_rate[0]
        st = sipp_run(wdir, "fixed", rate, rate * args.setup_secs, groups)
        res["fixed"] = st
        log("%s set-up at %d cps: %d ok, %d failed, CPU %s" %
            (backend, st["rate"], st["ok"], st["failed"],
             ", ".join("%s %.2f s" % kv for kv in st["cpu"].items())))
        wait_for(drained, 15, 0.5)
        res["max_ok"] = None
        for r in (args.ramp if ramp else []):
            kam.settle(10)
            st = sipp_run(wdir, "ramp%d" % r, r, r * args.ramp_secs, groups)
            res["steps"].append(st)
            log("%s ramp %d cps (achieved %.0f): %d ok, %d failed (%.2f %%), "
                "CPU %s" % (backend, r, st["achieved"], st["ok"],
                            st["failed"], st["fail_pct"],
                            ", ".join("%s %.2f s" % kv
                                      for kv in st["cpu"].items())))
            if st["fail_pct"] >= 1.0:
                break
            res["max_ok"] = r
            if not wait_for(drained, 20, 0.5):
                log("%s: sessions still active after the ramp step" % backend)
        res["kam_log_problems"] = [
            ln for ln in tail(kam.logfile, 5000).splitlines()
            if re.search(r"CRITICAL|BUG|BENCH manage failed", ln)][:5]
        if backend == "kamailio-ice":
            res["ice_stats"] = kam.rpc("ice.stats")
    finally:
        PROCS.stop(uas)
        kam.stop()
        if rtp:
            rtp.stop()
    return res


def merge_setup_runs(runs):
    """One result per backend from its rounds: the ramp of the last round,
    the fixed-rate run with the median CPU per call (all in fixed_ms)."""
    if "fixed" not in runs[-1]:
        return runs[-1]  # its error (or the last round's)
    good = [r for r in runs if "fixed" in r]
    res = dict(runs[-1])
    ordered = sorted(good, key=setup_ms_per_call)
    res["fixed"] = ordered[(len(ordered) - 1) // 2]["fixed"]
    res["fixed_ms"] = [round(setup_ms_per_call(r), 3) for r in good]
    return res


# --------------------------------------------------------------------------
# output

def fmt(v, f="%.1f"):
    return "-" if v is None else f % v


def table(rows, head):
    rows = [list(r) + [""] * (len(head) - len(r)) for r in rows]
    w = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    out = ["  ".join(str(h).rjust(w[i]) for i, h in enumerate(head)),
           "  ".join("-" * x for x in w)]
    for r in rows:
        out.append("  ".join(str(c).rjust(w[i]) for i, c in enumerate(r)))
    return "\n".join(out)


def group(res, name):
    for g in res["gen"]["groups"]:
        if g["name"] == name:
            return g
    return None


def print_relay_table(results):
    by = {(r["backend"], r["n"]): r for r in results if "gen" in r}
    rows = []
    for r in results:
        if "gen" not in r:
            rows.append([r["backend"], r["n"], "ERROR: " + r.get("error", "?")]
                        + [""] * 12)
            continue
        g = r["gen"]
        main = g["groups"][0]
        upp = main["us_per_pkt"]
        ratio_r = ratio_f = None
        if r["backend"] == "kamailio-ice":
            o = by.get(("rtpengine", r["n"]))
            if o:
                ratio_r = upp / group(o, "rtpengine")["us_per_pkt"]
        if r["backend"] != "floor":
            o = by.get(("floor", r["n"]))
            if o:
                ratio_f = upp / group(o, "floor")["us_per_pkt"]
        fw = group(r, "forwarder")
        rows.append([r["backend"], r["n"], "%.0f" % g.get("sent_pps", 0),
                     "%.0f" % g["relayed_pps"],
                     "%.3f" % g["loss_pct"], fmt(g["p50_us"], "%.0f"),
                     fmt(g["p99_us"], "%.0f"), "%.1f" % main["cpu_pct"],
                     "%.2f" % upp, fmt(fw["us_per_pkt"] if fw else None,
                                       "%.2f"),
                     fmt(ratio_r, "%.2f"), fmt(ratio_f, "%.2f"),
                     "%.0f" % g["gen_cpu_pct"],
                     fmt(g.get("psi_cpu_some_pct"), "%.0f"),
                     ("%d runs; " % r["attempts"] if r.get("attempts", 1) > 1
                      else "") + ("; ".join(r.get("why", [])) or "ok")])
    print(table(rows, ["backend", "N", "pps sent", "pps relayed", "loss %",
                       "p50 us",
                       "p99 us", "CPU %", "CPU us/pkt", "fwd us/pkt",
                       "us/rtpengine", "us/floor", "gen CPU %",
                       "PSI cpu %", "notes"]))


def print_shm_table(results):
    rows = []
    for r in results:
        if r["backend"] != "kamailio-ice" or "shm_used1" not in r:
            continue
        n = r["n"]
        rows.append([n, r["shm_used0"], r["shm_used1"],
                     "%.0f" % ((r["shm_used1"] - r["shm_used0"]) / n),
                     "%.0f" % ((r["shm_real1"] - r["shm_real0"]) / n),
                     r.get("shm_used2", 0) - r["shm_used0"]])
    if rows:
        print(table(rows, ["N", "shm used before", "after N calls",
                           "bytes/session (used)",
                           "bytes/session (real_used)",
                           "used after BYEs - before"]))


def relay_cpu(step, backend):
    """CPU seconds of the whole relay: Kamailio, plus rtpengine for it."""
    c = step["cpu"]
    return c["kamailio"] + (c.get("rtpengine", 0.0)
                            if backend == "rtpengine" else 0.0)


def setup_ms_per_call(r):
    """CPU ms per successful call of a set-up result's fixed-rate run."""
    f = r["fixed"]
    return 1000.0 * relay_cpu(f, r["backend"]) / max(f["ok"], 1)


def print_setup_table(results):
    rows = []
    by = {r["backend"]: r for r in results if "fixed" in r}
    proxy = setup_ms_per_call(by["proxy-only"]) if "proxy-only" in by else None
    for r in results:
        if "fixed" not in r:
            rows.append([r["backend"], "ERROR: " + r.get("error", "?")] +
                        [""] * 10)
            continue
        f = r["fixed"]
        b = r["backend"]
        cpu = relay_cpu(f, b)
        ms = setup_ms_per_call(r)
        cps_per_cpu = f["ok"] / cpu if cpu > 0 else None
        ratio = media_ratio = None
        media = ms - proxy if proxy is not None and b != "proxy-only" \
            else None
        if b == "kamailio-ice" and "rtpengine" in by:
            o = by["rtpengine"]
            ocpu = relay_cpu(o["fixed"], "rtpengine")
            if ocpu > 0 and cps_per_cpu:
                ratio = cps_per_cpu / (o["fixed"]["ok"] / ocpu)
            if media is not None and media > 0:
                media_ratio = (setup_ms_per_call(o) - proxy) / media
        idle = sum(v for k, v in r["idle_cpu_per_s"].items()
                   if k == "kamailio" or (k == "rtpengine" and
                                          b == "rtpengine"))
        split = " ".join(("(%s %.2f)" if k == "forwarder" else "%s %.2f") %
                         (k, v) for k, v in f["cpu"].items())
        tested = [s["rate"] for s in r["steps"]]
        maxok = r["max_ok"]
        mx = "-" if maxok is None else (
            ">= %d" % maxok if maxok == max(tested) else "%d" % maxok)
        rows.append([b, "%d x %ds" % (f["rate"],
                                      (f["ok"] + f["failed"]) // f["rate"]),
                     "%d/%d" % (f["ok"], f["failed"]), "%.2f" % cpu, split,
                     "%.2f" % ms,
                     " ".join("%.2f" % v for v in
                              sorted(r.get("fixed_ms", [ms]))),
                     fmt(media, "%.2f"),
                     fmt(cps_per_cpu, "%.0f"), fmt(ratio, "%.2f"),
                     fmt(media_ratio, "%.2f"), "%.1f" % (100 * idle), mx,
                     " ".join("%d(%.0f):%.1f%%" % (s["rate"], s["achieved"],
                                                  s["fail_pct"])
                              for s in r["steps"])])
    print(table(rows, ["backend", "cps x time", "ok/failed", "CPU s",
                       "CPU s by process group", "CPU ms/call",
                       "rounds ms/call", "media ms/call", "calls/CPU s", "vs rtpengine",
                       "media vs rtpengine", "idle CPU %",
                       "max cps <1% fail", "ramp cps(achieved):failed"]))
    print("CPU ms/call: the median of the rounds (the backends took turns); "
          "the columns before and after it are of that round")
    # ratios of the same round (its runs were back to back): the machine's
    # drift between rounds moves all backends, so these vary less
    rounds = {b: by[b].get("fixed_ms") for b in by}
    ice, rtp = rounds.get("kamailio-ice"), rounds.get("rtpengine")
    px = rounds.get("proxy-only")
    if ice and rtp and len(ice) == len(rtp) and len(ice) > 1:
        tot = [r / i for i, r in zip(ice, rtp) if i > 0]
        line = "per round: vs rtpengine %s (median %.2f)" % (
            " ".join("%.2f" % v for v in tot), statistics.median(tot))
        if px and len(px) == len(ice):
            med = [(r - p) / (i - p) for i, r, p in zip(ice, rtp, px)
                   if i - p > 0.05]
            line += "; media vs rtpengine %s" % (
                " ".join("%.1f" % v for v in med) or "-")
            line += "; proxy-only ms/call %s" % " ".join("%.2f" % v
                                                         for v in px)
        print(line)
    print("media ms/call = CPU ms/call - proxy-only's (Kamailio relaying the "
          "same SIP without touching SDP); media vs rtpengine = rtpengine's "
          "media ms/call / ours")


# --------------------------------------------------------------------------
# main

def inner(args):
    out = args.out
    os.makedirs(out, exist_ok=True)
    random.seed()
    log("machine: %d CPUs, load %s; relay on CPU %s, generator/sipp on CPU %s"
        % (os.cpu_count(), loadavg(), RELAY_CPU, GEN_CPU))
    relay_results, setup_results = [], []
    if not args.no_relay:
        t_start = time.monotonic()
        for n in args.calls:
            for b in args.only:
                wdir = os.path.join(out, "%s-%d" % (b, n))
                attempts = []
                for attempt in range(1 + args.retries):
                    if attempt and time.monotonic() - t_start > \
                            args.retry_budget * 60:
                        log("no time left to retry %s N=%d" % (LABEL[b], n))
                        break
                    os.makedirs(wdir, exist_ok=True)
                    log("%s N=%d%s (load %s)" % (
                        LABEL[b], n, " retry" if attempt else "", loadavg()))
                    try:
                        r = RELAYS[b](args, n, wdir)
                    except BenchError as e:
                        log("%s N=%d FAILED: %s" % (LABEL[b], n, e))
                        r = {"backend": LABEL[b], "n": n,
                             "error": str(e).splitlines()[0]}
                    r["load"] = loadavg()
                    r["why"] = disturbed(r)
                    attempts.append(r)
                    if "gen" in r:
                        g = r["gen"]
                        log("  %s N=%d: sent %.0f pps, relayed %.0f pps, "
                            "loss %.3f%%, p50 %.0f us, p99 %.0f us, CPU %.1f%%"
                            " = %.2f us/pkt, gen %.0f%%, PSI cpu %s%%%s" % (
                                LABEL[b], n, g["sent_pps"], g["relayed_pps"],
                                g["loss_pct"], g["p50_us"], g["p99_us"],
                                g["groups"][0]["cpu_pct"],
                                g["groups"][0]["us_per_pkt"],
                                g["gen_cpu_pct"], g.get("psi_cpu_some_pct"),
                                "; DISTURBED: " + "; ".join(r["why"])
                                if r["why"] else ""))
                    if not r["why"]:
                        break
                    wdir = os.path.join(out, "%s-%d-retry%d" % (b, n,
                                                                attempt + 1))
                # the least disturbed attempt: fewest skipped slots
                best = min(attempts, key=lambda a: (
                    "gen" not in a, len(a["why"]),
                    a.get("gen", {}).get("skipped", 0)))
                best["attempts"] = len(attempts)
                relay_results.append(best)
                with open(os.path.join(out, "results.json"), "w") as f:
                    json.dump({"relay": relay_results}, f, indent=1)
    if not args.no_setup:
        backends = [b for b in ("kamailio-ice", "rtpengine", "proxy-only")
                    if not ((b == "kamailio-ice" and "ice" not in args.only) or
                            (b == "rtpengine" and
                             "rtpengine" not in args.only) or
                            (b == "proxy-only" and args.no_proxy))]
        # the fixed-rate run of each backend is repeated, the backends taking
        # turns, so that a drift of the machine spreads over all of them;
        # the ramp comes with the last round of the last rate only
        for ri, rate in enumerate(args.setup_rate):
            runs = {b: [] for b in backends}
            for rep in range(args.setup_repeat):
                last = rep == args.setup_repeat - 1 and \
                    ri == len(args.setup_rate) - 1
                for b in backends:
                    wdir = os.path.join(out, "setup-" + b,
                                        "r%d-run%d" % (rate, rep + 1))
                    os.makedirs(wdir, exist_ok=True)
                    log("call set-up cost: %s at %d cps, round %d of %d "
                        "(load %s)" % (b, rate, rep + 1, args.setup_repeat,
                                       loadavg()))
                    try:
                        runs[b].append(setup_cost(args, b, wdir, ramp=last,
                                                  rate=rate))
                    except BenchError as e:
                        log("set-up %s FAILED: %s" % (b, e))
                        runs[b].append({"backend": b, "rate": rate,
                                        "error": str(e).splitlines()[0]})
            for b in backends:
                m = merge_setup_runs(runs[b])
                m["rate"] = rate
                setup_results.append(m)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"relay": relay_results, "setup": setup_results}, f,
                  indent=1)
    print()
    print("== ice-bench: %s, %d CPUs, load at end %s; relay pinned to CPU %s, "
          "generator to CPU %s" % (time.strftime("%Y-%m-%d %H:%M"),
                                   os.cpu_count(), loadavg(), RELAY_CPU,
                                   GEN_CPU))
    if relay_results:
        print()
        print("RTP relay: %d pkt/s per direction per call, 172-byte packets, "
              "%.0f s warm-up + %.0f s steady; CPU = utime+stime of all "
              "kamailio processes / rtpengine (all threads) / floor relay; "
              "fwd = the ICE FORWARDER process alone" %
              (50, args.warmup, args.duration))
        print_relay_table(relay_results)
        print()
        print("shm per session (kamailio-ice, core.shmmem, plain audio "
              "session, tm transactions drained):")
        print_shm_table(relay_results)
    if setup_results:
        print()
        print("Call set-up (sipp UAC -> Kamailio -> sipp UAS, ICE offer and "
              "answer, BYE after 1 s; CPU = all kamailio processes + "
              "rtpengine):")
        for rate in args.setup_rate:
            print_setup_table([r for r in setup_results
                               if r.get("rate") == rate])
    print()
    print("raw results: %s" % os.path.join(out, "results.json"))
    return 0


def ns_destroy():
    if not os.path.exists("/run/netns/" + NS):
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        r = subprocess.run(["ip", "netns", "pids", NS], stdout=subprocess.PIPE,
                           text=True)
        pids = [int(p) for p in r.stdout.split() if p.isdigit()]
        if not pids:
            break
        for p in pids:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        wait_for(lambda: not subprocess.run(
            ["ip", "netns", "pids", NS], stdout=subprocess.PIPE,
            text=True).stdout.split(), 3)
    subprocess.run(["ip", "netns", "del", NS])


def outer(argv):
    if os.geteuid() != 0:
        print("bench.py needs root (network namespace, CPU pinning)")
        return 2
    ns_destroy()   # a stale one of an earlier, killed run
    subprocess.run(["ip", "netns", "add", NS], check=True)
    try:
        ex = ["ip", "netns", "exec", NS]
        subprocess.run(ex + ["ip", "link", "set", "lo", "up"], check=True)
        subprocess.run(ex + ["sysctl", "-q", "-w",
                             "net.ipv4.ip_local_port_range=%s" % EPHEMERAL],
                       check=True)
        # --sysctl KEY=VAL: experiments, inside our namespace only
        for i, a in enumerate(argv):
            if a == "--sysctl" and i + 1 < len(argv):
                subprocess.run(ex + ["sysctl", "-w", argv[i + 1]], check=True)
        p = subprocess.Popen(ex + [sys.executable, os.path.abspath(__file__),
                                   "--inner"] + argv)
        try:
            return p.wait()
        except KeyboardInterrupt:
            p.send_signal(signal.SIGINT)
            try:
                return p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                return 130
    finally:
        ns_destroy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true",
                    help="N=250 only, ~10 s a run, short set-up test")
    ap.add_argument("--calls", default="250,500,1000,2000",
                    help="numbers of calls for the relay runs")
    ap.add_argument("--only", default="ice,rtpengine,floor",
                    help="backends: ice, rtpengine, floor, floor-uring (the "
                    "floor relay through io_uring; not in the default) "
                    "(relay runs; ice/rtpengine also select the set-up "
                    "runs)")
    ap.add_argument("--warmup", type=float, default=5,
                    help="seconds of RTP before the steady window")
    ap.add_argument("--duration", type=float, default=20,
                    help="seconds of the steady window")
    ap.add_argument("--no-relay", action="store_true",
                    help="skip the RTP relay runs")
    ap.add_argument("--no-setup", action="store_true",
                    help="skip the call set-up runs")
    ap.add_argument("--no-proxy", action="store_true",
                    help="skip the proxy-only (no media) set-up reference")
    ap.add_argument("--setup-rate", default="50,200",
                    help="calls per second of the fixed-rate set-up runs, "
                    "one table each (50: a lightly loaded proxy; 200: half "
                    "of what rtpengine sustains here)")
    ap.add_argument("--setup-secs", type=int, default=20,
                    help="its duration")
    ap.add_argument("--setup-repeat", type=int, default=3,
                    help="rounds of the fixed-rate set-up run, the backends "
                    "taking turns; the table shows the median round")
    ap.add_argument("--ramp", default="50,100,200,400,800,1200,1600",
                    help="call rates of the ramp (stops at >= 1%% failed)")
    ap.add_argument("--ramp-secs", type=int, default=8,
                    help="seconds of calls per ramp step")
    ap.add_argument("--idle-secs", type=float, default=4,
                    help="seconds of idle CPU measured before set-up runs")
    ap.add_argument("--kam-mm", default="",
                    help="Kamailio's memory manager for shm and pkg (-x/-X: "
                    "qm, fm or tlsf; default: Kamailio's own, qm)")
    ap.add_argument("--forwarders", type=int, default=1,
                    help="kamailio-ice's forwarder processes (modparam "
                    "forwarders; default 1, the relay has one CPU)")
    ap.add_argument("--rtpengine-threads", type=int, default=0,
                    help="rtpengine --num-threads (default: its own, one "
                    "per CPU)")
    ap.add_argument("--sysctl", action="append", default=[],
                    metavar="KEY=VAL", help="set in the bench namespace "
                    "(per-namespace keys only, e.g. net.unix.max_dgram_qlen)")
    ap.add_argument("--retries", type=int, default=1,
                    help="rerun a disturbed relay run this many times")
    ap.add_argument("--retry-budget", type=float, default=10,
                    help="minutes of relay runs after which no retry starts")
    ap.add_argument("--bench", default=os.path.join(REPO, "build", "bench",
                                                    "ice-bench"),
                    help="the ice-bench binary")
    ap.add_argument("--module", default=os.path.join(REPO, "modules", "ice",
                                                     "ice.so"),
                    help="the ice module to load")
    ap.add_argument("--out", default=os.path.join(REPO, "build", "bench",
                                                  "out"),
                    help="work and results directory")
    args = ap.parse_args()
    if not args.inner:
        return outer(sys.argv[1:])
    if args.quick:
        args.calls = "250"
        args.warmup, args.duration = 4.0, 6.0
        args.setup_secs = 5
        args.ramp = "100"
        args.ramp_secs = 4
        args.idle_secs = 2
        args.setup_repeat = 1
        args.setup_rate = "50"
    args.calls = [int(x) for x in str(args.calls).split(",") if x]
    args.only = [x for x in args.only.split(",") if x]
    args.ramp = [int(x) for x in str(args.ramp).split(",") if x]
    args.setup_rate = [int(x) for x in str(args.setup_rate).split(",") if x]
    for b in args.only:
        if b not in RELAYS:
            ap.error("unknown backend %s" % b)
    if max(args.calls) > 4000:
        ap.error("at most 4000 calls (port plan)")
    args.out = os.path.abspath(args.out)
    Rtpengine.threads = args.rtpengine_threads
    Kamailio.mm = args.kam_mm
    Kamailio.forwarders = args.forwarders
    args.bench = os.path.abspath(args.bench)
    args.module = os.path.abspath(args.module)
    for path in (args.bench, args.module, RTPENGINE, SIPP, KAMAILIO):
        if not os.path.exists(path):
            ap.error("%s not found (make module / make bench builds; "
                     "scripts/deps.sh installs)" % path)

    def on_term(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    try:
        return inner(args)
    finally:
        PROCS.stop_all()


if __name__ == "__main__":
    sys.exit(main())
