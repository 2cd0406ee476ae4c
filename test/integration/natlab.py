"""natlab: network-namespace topologies with NATs for the ICE tests.

  icet-pub: bridge br0, 198.51.100.1 (kamailio + relay), 198.51.100.3 and
            198.51.100.4 (coturn, --stun-only: two addresses so the NAT
            self-check can tell endpoint-independent mapping from symmetric)
  per side (caller, callee) and NAT type:
    none      icet-<side>-none: the endpoint directly on the public segment
              (caller 198.51.100.11, callee 198.51.100.12)
    cone      icet-nat-<side>-cone (public .21 caller / .31 callee, private
              10.11.0.1 / 10.21.0.1) and icet-<side>-cone (10.11.0.2 /
              10.21.0.2, default route via the NAT)
    symmetric icet-nat-<side>-sym (.22 / .32, 10.12.0.1 / 10.22.0.1) and
              icet-<side>-symmetric (10.12.0.2 / 10.22.0.2)
  optional: icet-attacker 198.51.100.66 on the public segment.

No namespace has a default route except the NATed endpoints (via their
NAT); the NATs and icet-pub only know their connected subnets, so nothing
can leave the machine and the private 10.x addresses are unreachable from
the public side (each NAT's subnet is distinct, so two NATed endpoints can
not reach each other's host candidates either).

NAT rules (nftables, in the NAT namespace; pub0 = public side, priv0 =
private side; ip_forward on):
  cone (full cone: endpoint-independent mapping and filtering)
    postrouting: oifname pub0 masquerade            (Linux keeps the source
                 port when the tuple is free: with one host behind the NAT
                 it always is, so a private port P maps to public P toward
                 every destination)
    forward:     every UDP packet priv0 -> pub0 adds/refreshes its source
                 port in the dynamic set @mapped (timeout 120 s)
    prerouting:  iifname pub0 udp dport @mapped dnat to <host>: a packet
                 from ANY address to a mapped public port reaches the host
                 (replies of the DNATed flow go back out from that port)
    filter:      forward policy drop; accept established/related, priv0 ->
                 pub0 and DNATed flows
  symmetric (endpoint-dependent mapping, filtering of replies only)
    postrouting: oifname pub0 masquerade fully-random (a new random port
                 for every new flow, i.e. per destination address:port)
    filter:      forward policy drop; accept established/related and
                 priv0 -> pub0 only
  callee NATs (both types) also forward udp/5091 (SIP) to the callee, so
  the INVITE can reach it (kamailio's nathelper fixes its Contact).
The lab checks these behaviours before use (check_nat_behaviour): from one
socket it asks both STUN addresses for its mapping (equal = endpoint-
independent) and then has a third public address (198.51.100.1, never
contacted) send to the first mapping (received = endpoint-independent
filtering).
"""

import json
import os
import re
import select
import signal
import subprocess
import time

import icetest as it
from ice_peer import parse_sdp  # noqa: F401 (re-exported for the tests)

HERE = os.path.dirname(os.path.abspath(__file__))
ICE_PEER = os.path.join(HERE, "ice_peer.py")
PY = "/usr/bin/python3"
TURNSERVER = os.environ.get("TURNSERVER", "/usr/bin/turnserver")

PUB_PREFIX = "198.51.100."
KAM_IP = PUB_PREFIX + "1"
STUN_IPS = (PUB_PREFIX + "3", PUB_PREFIX + "4")
STUN_PORT = 3478
ATTACKER_IP = PUB_PREFIX + "66"
NAT_TYPES = ("none", "cone", "symmetric")
SIP_PORT = {"caller": 5070, "callee": 5091}
SHORT = {"none": "n", "cone": "c", "symmetric": "s"}

# side -> nat -> (public ip of the endpoint or its NAT, private subnet)
PLAN = {
    "caller": {"none": (PUB_PREFIX + "11", None),
               "cone": (PUB_PREFIX + "21", "10.11.0"),
               "symmetric": (PUB_PREFIX + "22", "10.12.0")},
    "callee": {"none": (PUB_PREFIX + "12", None),
               "cone": (PUB_PREFIX + "31", "10.21.0"),
               "symmetric": (PUB_PREFIX + "32", "10.22.0")},
}


class Endpoint:
    """Where one SIP/ICE peer runs."""

    def __init__(self, side, nat, ns, ip, public_ip, nat_ns=None):
        self.side = side
        self.nat = nat
        self.ns = ns            # it.Netns of the endpoint
        self.ip = ip            # its own address
        self.public_ip = public_ip  # its address as seen from the public net
        self.nat_ns = nat_ns
        self.sip_port = SIP_PORT.get(side, 5080)

    def __repr__(self):
        return "%s/%s(%s via %s)" % (self.side, self.nat, self.ip,
                                     self.public_ip)


def _ns_quiet(ns):
    """No IPv6 (no link-local or DAD noise in the candidates)."""
    for k in ("net.ipv6.conf.all.disable_ipv6",
              "net.ipv6.conf.default.disable_ipv6"):
        ns.run(["sysctl", "-q", "-w", "%s=1" % k], check=False)


def _nat_rules(kind, host, sip_forward):
    fwd_sip = ('    iifname "pub0" udp dport %d dnat to %s\n' %
               (SIP_PORT["callee"], host)) if sip_forward else ""
    if kind == "cone":
        return """
table ip icet_nat {
  set mapped {
    type inet_service
    flags dynamic,timeout
    timeout 120s
  }
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
%(fwd_sip)s    iifname "pub0" udp dport @mapped dnat to %(host)s
  }
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "pub0" masquerade
  }
  chain filter_fwd {
    type filter hook forward priority filter; policy drop;
    iifname "priv0" oifname "pub0" meta l4proto udp update @mapped { udp sport timeout 120s }
    ct state established,related accept
    iifname "priv0" oifname "pub0" accept
    ct status dnat accept
  }
}
""" % {"fwd_sip": fwd_sip, "host": host}
    return """
table ip icet_nat {
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
%(fwd_sip)s  }
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "pub0" masquerade fully-random
  }
  chain filter_fwd {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname "priv0" oifname "pub0" accept
    ct status dnat accept
  }
}
""" % {"fwd_sip": fwd_sip}


class LabKamailio(it.Kamailio):
    """icetest's kamailio, except that initial requests go to their
    Request-URI (the callee's public address) instead of a fixed $du, so
    one kamailio serves every cell of a matrix."""

    def __init__(self, t, ns, ip, flags, name):
        super().__init__(t, ns, ip, "natlab.invalid:5091", listen_port=5060,
                         relay_ip=ip, ice_flags=flags, name=name)
        with open(self.cfg) as f:
            cfg = f.read()
        line = '\t$du = "sip:natlab.invalid:5091";\n'
        if line not in cfg:
            raise it.TestError("natlab: the $du line of icetest's config "
                               "template changed; update LabKamailio")
        cfg = cfg.replace(line, "\t# natlab: relayed to the Request-URI\n")
        with open(self.cfg, "w") as f:
            f.write(cfg)
        self.flags = flags

    def manage_rcs(self, call_id):
        """[(msg, rc)] of the script's ice_manage log lines for call_id."""
        rx = re.compile(r"ICETEST ice_manage rc=(-?\d+) msg=(\S+) cid=%s$" %
                        re.escape(call_id))
        out = []
        for ln in self.log_text().splitlines():
            m = rx.search(ln)
            if m:
                out.append((m.group(2), int(m.group(1))))
        return out

    def lines_for(self, call_id, pattern=None):
        rx = re.compile(pattern) if pattern else None
        return [ln for ln in self.log_text().splitlines()
                if call_id in ln and (rx is None or rx.search(ln))]


class PeerProc:
    """One ice_peer.py process in an endpoint's namespace."""

    def __init__(self, t, ns, name, argv, timeout):
        self.t = t
        self.name = name
        self.dir = os.path.join(t.dir, "peers")
        os.makedirs(self.dir, exist_ok=True)
        self.json = os.path.join(self.dir, name + ".json")
        self.logfile = os.path.join(self.dir, name + ".log")
        self.outfile = os.path.join(self.dir, name + ".out")
        for f in (self.json, self.logfile, self.outfile):
            try:
                os.unlink(f)
            except FileNotFoundError:
                pass
        self.argv = ["ip", "netns", "exec", ns.name, PY, ICE_PEER] + \
            list(argv) + ["--json-out", self.json]
        self.timeout = timeout
        self.proc = None

    def start(self):
        self.out_fh = open(self.outfile, "wb")
        self.err_fh = open(self.logfile, "wb")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=self.out_fh, stderr=self.err_fh,
                                     start_new_session=True)
        self.t.defer(self.kill, "peer %s" % self.name)
        return self

    def wait_ready(self, timeout=8):
        def ready():
            if self.proc.poll() is not None:
                raise it.TestError("peer %s exited early (rc=%s):\n%s" % (
                    self.name, self.proc.returncode,
                    it.tail(self.logfile, 30)))
            return "READY" in it.tail(self.outfile, 5)
        if not it.wait_for(ready, timeout, interval=0.05):
            raise it.TestError("peer %s not ready after %ss" % (self.name,
                                                               timeout))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout=None):
        try:
            return self.proc.wait(timeout=timeout or self.timeout)
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
        for fh in (getattr(self, "out_fh", None), getattr(self, "err_fh",
                                                          None)):
            try:
                fh.close()
            except Exception:  # noqa: BLE001
                pass

    def result(self):
        try:
            with open(self.json) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None


def run_tool(t, ns, args, timeout=15):
    """Run ice_peer.py with a probe command to completion; its JSON."""
    r = subprocess.run(["ip", "netns", "exec", ns.name, PY, ICE_PEER] +
                       list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=timeout)
    for ln in reversed(r.stdout.splitlines()):
        if ln.startswith("RESULT "):
            return json.loads(ln[7:])
    raise it.TestError("ice_peer %s gave no result (rc=%d):\n%s" %
                       (args[0], r.returncode, r.stdout[-2000:]))


def run_tools(t, ns, arglists, timeout=20):
    """Run several ice_peer.py probe commands in ns at once; their JSON
    results in order (None for one that gave none)."""
    procs = [subprocess.Popen(["ip", "netns", "exec", ns.name, PY, ICE_PEER] +
                              list(a), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True,
                              start_new_session=True) for a in arglists]
    out = []
    for p in procs:
        try:
            so, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            so, _ = p.communicate()
        res = None
        for ln in reversed(so.splitlines()):
            if ln.startswith("RESULT "):
                res = json.loads(ln[7:])
                break
        if res is None:
            t.log("probe %s gave no result:\n%s" % (arglists[len(out)][0],
                                                     so[-1500:]))
        out.append(res)
    return out


class NatLab:
    def __init__(self, t, callers=NAT_TYPES, callees=NAT_TYPES,
                 attacker=False):
        self.t = t
        self.pub = it.Netns(t, "pub")
        _ns_quiet(self.pub)
        self.pub.run("ip link add br0 type bridge")
        self.pub.run("ip link set br0 up")
        # bridged frames must not go through this namespace's netfilter
        for k in ("bridge-nf-call-iptables", "bridge-nf-call-arptables"):
            if os.path.exists("/proc/sys/net/bridge/" + k):
                self.pub.run(["sysctl", "-q", "-w", "net.bridge.%s=0" % k],
                             check=False)
        for ip in (KAM_IP,) + STUN_IPS:
            self.pub.run(["ip", "addr", "add", ip + "/24", "dev", "br0"])
        self.endpoints = {}
        for side, kinds in (("caller", callers), ("callee", callees)):
            for nat in kinds:
                self.endpoints[(side, nat)] = self._endpoint(side, nat)
        self.attacker = None
        if attacker:
            ns = it.Netns(t, "attacker")
            _ns_quiet(ns)
            self._plug(ns, "atk", ATTACKER_IP)
            self.attacker = Endpoint("attacker", "none", ns, ATTACKER_IP,
                                     ATTACKER_IP)
        self.stun_proc = None
        r = self.pub.run(["ip", "route", "get", "10.11.0.2"], check=False)
        if r.returncode == 0:
            raise it.TestError("icet-pub must not route to 10.x: %s" %
                               r.stdout)

    def _plug(self, ns, short, ip):
        """A veth from ns (pub0, ip/24) to the bridge in icet-pub."""
        br_end = "b-" + short
        it.sh(["ip", "link", "add", "pub0", "netns", ns.name, "type", "veth",
               "peer", "name", br_end, "netns", self.pub.name])
        self.pub.run(["ip", "link", "set", br_end, "master", "br0"])
        self.pub.run(["ip", "link", "set", br_end, "up"])
        ns.run(["ip", "addr", "add", ip + "/24", "dev", "pub0"])
        ns.run(["ip", "link", "set", "pub0", "up"])

    def _endpoint(self, side, nat):
        pub_ip, subnet = PLAN[side][nat]
        short = {"caller": "a", "callee": "b"}[side] + SHORT[nat]
        ns = it.Netns(self.t, "%s-%s" % (side, nat))
        _ns_quiet(ns)
        if nat == "none":
            self._plug(ns, short, pub_ip)
            return Endpoint(side, nat, ns, pub_ip, pub_ip)
        nat_ns = it.Netns(self.t, "nat-%s-%s" % (side, SHORT[nat] == "c" and
                                                  "cone" or "sym"))
        _ns_quiet(nat_ns)
        self._plug(nat_ns, short, pub_ip)
        host = subnet + ".2"
        it.sh(["ip", "link", "add", "priv0", "netns", nat_ns.name, "type",
               "veth", "peer", "name", "eth0", "netns", ns.name])
        nat_ns.run(["ip", "addr", "add", subnet + ".1/24", "dev", "priv0"])
        nat_ns.run(["ip", "link", "set", "priv0", "up"])
        ns.run(["ip", "addr", "add", host + "/24", "dev", "eth0"])
        ns.run(["ip", "link", "set", "eth0", "up"])
        ns.run(["ip", "route", "add", "default", "via", subnet + ".1"])
        nat_ns.sysctl("net.ipv4.ip_forward", 1)
        nat_ns.nft(_nat_rules(nat, host, sip_forward=(side == "callee")))
        return Endpoint(side, nat, ns, host, pub_ip, nat_ns)

    # -- STUN server
    def start_stun(self):
        if not os.path.exists(TURNSERVER):
            raise it.TestError("coturn's turnserver not found at %s (apt-get "
                               "install coturn)" % TURNSERVER)
        d = os.path.join(self.t.dir, "coturn")
        os.makedirs(d, exist_ok=True)
        argv = ["ip", "netns", "exec", self.pub.name, TURNSERVER, "-n",
                "--stun-only", "--no-cli", "--no-tls", "--no-dtls",
                "--listening-port", str(STUN_PORT),
                "--pidfile", os.path.join(d, "turnserver.pid"),
                "--log-file", "stdout", "--simple-log"]
        for ip in STUN_IPS:
            argv += ["--listening-ip", ip]
        self.stun_log = os.path.join(d, "turnserver.log")
        fh = open(self.stun_log, "wb")
        self.stun_proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                          stdout=fh, stderr=subprocess.STDOUT,
                                          start_new_session=True)

        def stop():
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(self.stun_proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.stun_proc.wait(timeout=3)
                    break
                except subprocess.TimeoutExpired:
                    continue
            fh.close()
        self.t.defer(stop, "coturn")

        def bound():
            if self.stun_proc.poll() is not None:
                raise it.TestError("turnserver exited (rc=%s):\n%s" % (
                    self.stun_proc.returncode, it.tail(self.stun_log, 20)))
            r = self.pub.run(["ss", "-Huln", "sport = :%d" % STUN_PORT],
                             check=False)
            return all(ip in r.stdout for ip in STUN_IPS)
        if not it.wait_for(bound, 8):
            raise it.TestError("turnserver did not bind %s:%d:\n%s" % (
                STUN_IPS, STUN_PORT, it.tail(self.stun_log, 20)))
        self.t.log("coturn (STUN only) on %s port %d" % (
            " and ".join(STUN_IPS), STUN_PORT))

    def stun_arg(self):
        return "%s:%d" % (STUN_IPS[0], STUN_PORT)

    # -- NAT self-check
    def check_nat_behaviour(self):
        """Every endpoint's NAT behaves as its type says (all endpoints
        checked in parallel): from one socket, the mappings seen by the two
        STUN addresses (equal = endpoint-independent mapping), then a packet
        from 198.51.100.1, which the socket never contacted, to the first
        mapping (received = endpoint-independent filtering)."""
        t = self.t
        procs = {}
        for key, ep in sorted(self.endpoints.items()):
            argv = ["ip", "netns", "exec", ep.ns.name, PY, ICE_PEER,
                    "natcheck", "--local-ip", ep.ip, "--stun",
                    self.stun_arg(), "--stun2", "%s:%d" % (STUN_IPS[1],
                                                            STUN_PORT),
                    "--listen", "3"]
            procs[key] = [subprocess.Popen(argv, stdout=subprocess.PIPE,
                                           stderr=subprocess.STDOUT,
                                           text=True, start_new_session=True),
                          "", None]
        try:
            deadline = time.monotonic() + 10
            waiting = set(procs)
            targets = []
            while waiting and time.monotonic() < deadline:
                fds = {procs[k][0].stdout: k for k in waiting}
                r, _, _ = select.select(list(fds), [], [], 0.2)
                for fh in r:
                    k = fds[fh]
                    ln = fh.readline()
                    if not ln:
                        waiting.discard(k)
                        continue
                    procs[k][1] += ln
                    if ln.startswith("MAPPED "):
                        waiting.discard(k)
                        if ln.split()[1] != "-":
                            targets.append(ln.split()[1])
            if targets:  # one sender for all: the listeners wait 3 s
                run_tool(t, self.pub, ["udpsend", "--local-ip", KAM_IP,
                                       "--target", ",".join(targets)])
            results = {}
            for k, (p, buf, _) in procs.items():
                p.wait(timeout=10)
                buf += p.stdout.read()  # not communicate(): it would skip
                p.stdout.close()        # what readline() left buffered
                for ln in reversed(buf.splitlines()):
                    if ln.startswith("RESULT "):
                        results[k] = json.loads(ln[7:])
                        break
                else:
                    raise it.TestError("natcheck for %s gave no result:\n%s"
                                       % (self.endpoints[k],
                                          buf[-2000:]))
        finally:
            for p, _, _ in procs.values():
                if p.poll() is None:
                    p.kill()
                    p.wait()
        for (side, nat), r in sorted(results.items()):
            ep = self.endpoints[(side, nat)]
            m1, m2 = r["mapped"]
            probe = r["probe_from"]
            t.log("natcheck %s: local %s, mapped %s / %s, probe from %s" %
                  (ep, r["local"], m1, m2, probe))
            local_port = r["local"].rsplit(":", 1)[1]
            if nat == "none":
                t.check(m1 == m2 == r["local"] and probe,
                        "natcheck %s/none: no translation, open" % side,
                        detail=json.dumps(r))
            elif nat == "cone":
                t.check(m1 and m1 == m2 and m1.startswith(ep.public_ip + ":")
                        and m1.endswith(":" + local_port) and probe,
                        "natcheck %s/cone: one port-preserving mapping for "
                        "both destinations, and an unsolicited packet from a "
                        "third address gets in (full cone)" % side,
                        detail=json.dumps(r))
            else:
                t.check(m1 and m2 and m1 != m2 and
                        m1.startswith(ep.public_ip + ":") and not probe,
                        "natcheck %s/symmetric: a different mapping per "
                        "destination, unsolicited packets dropped" % side,
                        detail=json.dumps(r))

    # -- kamailio
    def kamailio(self, flags, name):
        k = LabKamailio(self.t, self.pub, KAM_IP, flags, name)
        self.t.kams.append(k)
        k.start()
        return k

    # -- one call
    def call(self, kam, caller, callee, call_id, plain=False, duration=3.0,
             caller_args=(), callee_args=(), during=None, timeout=30):
        """Place a call caller -> callee through kam. during(state) runs
        in this process while the call is up (polling every 0.3 s). Returns
        a dict: caller, callee (peer JSON), sessions (ice.session snapshots
        taken during the call), rcs (ice_manage return codes)."""
        t = self.t
        common = ["--stun", self.stun_arg()]
        if plain:
            common.append("--no-ice")
        name = call_id.split("@")[0]
        uas = PeerProc(t, callee.ns, name + "-callee",
                       ["call", "--role", "callee", "--local-ip", callee.ip,
                        "--sip-port", str(callee.sip_port),
                        "--timeout", str(timeout + 5), "--verbose"] + common +
                       list(callee_args), timeout + 10).start()
        uas.wait_ready()
        ruri = "sip:callee@%s:%d" % (callee.public_ip, callee.sip_port)
        uac = PeerProc(t, caller.ns, name + "-caller",
                       ["call", "--role", "caller", "--local-ip", caller.ip,
                        "--sip-port", str(caller.sip_port),
                        "--proxy", "%s:5060" % KAM_IP, "--ruri", ruri,
                        "--call-id", call_id, "--duration", str(duration),
                        "--timeout", str(timeout), "--verbose"] + common +
                       list(caller_args), timeout + 5).start()
        snaps = []
        state = {"uac": uac, "uas": uas, "kam": kam, "call_id": call_id}
        deadline = time.monotonic() + timeout + 5
        while uac.running() and time.monotonic() < deadline:
            try:
                s = t.ice_session(kam, call_id) if t.has_module else None
                if s:
                    snaps.append(s)
            except it.RpcError:
                pass
            except OSError:
                pass
            if during is not None:
                during(state)
            time.sleep(0.3)
        rc_uac = uac.wait(timeout=5)
        rc_uas = uas.wait(timeout=8)
        res = {"caller": uac.result() or {}, "callee": uas.result() or {},
               "rc_caller": rc_uac, "rc_callee": rc_uas,
               "sessions": snaps, "rcs": kam.manage_rcs(call_id),
               "uac": uac, "uas": uas, "state": state}
        return res


def last_session(res):
    return res["sessions"][-1] if res["sessions"] else None


def relay_media_counts(session):
    """(packets in, packets out) summed over every leg and component of an
    ice.session snapshot."""
    pin = pout = 0
    for _, _, tot in it.leg_totals(session):
        pin += tot["packets_in"]
        pout += tot["packets_out"]
    return pin, pout


def streams(session, role=None):
    out = []
    for leg in (session or {}).get("legs", []) or []:
        if role and leg.get("role") != role:
            continue
        for st in leg.get("streams", []) or []:
            out.append(st)
    return out


def ip_of(addr):
    return addr.rsplit(":", 1)[0] if addr else None


def session_brief(session):
    """One line per leg of an ice.session snapshot, for logs."""
    out = []
    for leg in (session or {}).get("legs", []) or []:
        for st in leg.get("streams", []) or []:
            comps = st.get("components", []) or []
            c1 = comps[0] if comps else {}
            out.append("%s: ice=%s checks sent/recv=%s/%s auth_failures=%s "
                       "selected=%s latched=%s pkts in/out=%s/%s dropped=%s"
                       % (leg.get("role"), st.get("ice"),
                          st.get("ice_checks_sent"),
                          st.get("ice_checks_received"),
                          st.get("ice_auth_failures"),
                          c1.get("ice_selected"), c1.get("latched"),
                          c1.get("packets_in"), c1.get("packets_out"),
                          c1.get("dropped")))
    return "; ".join(out) or "<no session>"
