#!/usr/bin/env python3
"""call_basic_epoll: call_basic with the forwarder's media I/O on epoll.

The forwarder normally runs its media through io_uring; modparam("ice",
"io_uring", 0) keeps it on epoll + recvmmsg/sendmmsg, the path a kernel or
seccomp policy without io_uring falls back to. Same call and checks as
call_basic (RTP both ways counted at the receivers and in ice.session), plus
ice.stats saying which I/O ran.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ["ICE_TEST_IO_URING"] = "0"
import icetest as it  # noqa: E402
import test_call_basic  # noqa: E402


def run(t):
    test_call_basic.run(t)  # checks ice.stats media_io == "epoll" too


if __name__ == "__main__":
    sys.exit(it.main(run, "call_basic_epoll"))
