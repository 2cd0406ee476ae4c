#!/usr/bin/env python3
"""soak: the short soak of make test: 300 calls with media at 100 calls/s
through kamailio + ice, then nothing may stay behind (sessions, ports,
shared memory), and port-pool exhaustion with a 8-port range.

The driver is test/soak/soak.py (make soak: 100k calls; make soak-short:
2000); see its docstring for every check. Env: ICE_SOAK_CALLS,
ICE_SOAK_RATE to change the load of this test.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "soak"))
import icetest as it  # noqa: E402
import soak  # noqa: E402

CALLS = int(os.environ.get("ICE_SOAK_CALLS", "300"))
RATE = int(os.environ.get("ICE_SOAK_RATE", "100"))


def run(t):
    if not t.needs_module("soak"):
        return
    fig = soak.load_run(t, CALLS, RATE, media_ms=500, settle_s=15,
                         warm_settle_s=0)
    t.log("figures: %s" % fig)
    soak.exhaustion_run(t, hold_ms=3000)


if __name__ == "__main__":
    sys.exit(it.main(run, "soak"))
