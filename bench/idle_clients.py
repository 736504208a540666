#!/usr/bin/env python3
"""bench/idle_clients.py PORT N PID - hold N idle SMTP sessions open.

Used by bench/idle.sh.  Reads the VmRSS of PID (the upesi worker) after one
warm-up session, opens N connections in batches (each batch's greetings are
read before the next batch connects, so the accept queue never overflows),
reads VmRSS again with all N sessions idle, and times the greeting of a
new client (connect to the first reply line) before and meanwhile.  Prints
key=value lines.  Fails (exit 1) when a session gets no 220 greeting.
"""
import resource
import socket
import statistics
import sys
import time


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def greeting(sock):
    buf = b""
    while not buf.endswith(b"\r\n"):
        chunk = sock.recv(512)
        if not chunk:
            raise RuntimeError("connection closed before the greeting")
        buf += chunk
    if not buf.startswith(b"220"):
        raise RuntimeError("no 220 greeting: %r" % buf[:80])
    return buf


def greeting_ms(port, tries=7):
    times = []
    for _ in range(tries):
        t0 = time.perf_counter()
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        greeting(s)
        times.append((time.perf_counter() - t0) * 1000)
        s.sendall(b"QUIT\r\n")
        s.close()
    return statistics.median(times)


def main():
    port, n, pid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 64
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    greeting_ms(port, 3)                    # warm-up
    time.sleep(0.3)
    before_ms = greeting_ms(port)
    rss_before = rss_kb(pid)
    socks = []
    t0 = time.perf_counter()
    batch = 250
    while len(socks) < n:
        new = []
        for _ in range(min(batch, n - len(socks))):
            s = socket.create_connection(("127.0.0.1", port), timeout=60)
            new.append(s)
        for s in new:
            greeting(s)
        socks.extend(new)
    open_s = time.perf_counter() - t0
    time.sleep(0.5)
    rss_after = rss_kb(pid)
    during_ms = greeting_ms(port)
    print(f"sessions={len(socks)}")
    print(f"open_seconds={open_s:.2f}")
    print(f"rss_before_kb={rss_before}")
    print(f"rss_after_kb={rss_after}")
    print(f"rss_per_session_bytes={(rss_after - rss_before) * 1024 / n:.0f}")
    print(f"greeting_ms_idle_server={before_ms:.2f}")
    print(f"greeting_ms_with_sessions={during_ms:.2f}")
    for s in socks:
        s.close()
    time.sleep(1.0)
    print(f"rss_after_close_kb={rss_kb(pid)}")


if __name__ == "__main__":
    try:
        main()
    except (OSError, RuntimeError) as e:
        print(f"idle_clients: {e}", file=sys.stderr)
        sys.exit(1)
