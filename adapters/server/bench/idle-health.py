#!/usr/bin/env python3
"""Latency of GET /health while N idle sockets are open to nhc-server.

    adapters/server/bench/idle-health.py HOST:PORT IDLE [REQUESTS] [--hold-partial]

Opens IDLE connections that send nothing (or, with --hold-partial, half an HTTP/2
preface), then times REQUESTS sequential GET /health on new connections and prints
p50/p99/max in ms and how many failed. 127.0.0.1 only; nothing is left open."""
import socket, sys, time

def main():
    host, port = sys.argv[1].rsplit(":", 1)
    port = int(port)
    idle_n = int(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 and not sys.argv[3].startswith("--") else 200
    partial = "--hold-partial" in sys.argv
    idle = []
    for _ in range(idle_n):
        try:
            s = socket.create_connection((host, port), timeout=5)
            if partial:
                s.sendall(b"PRI * HTTP/2.0\r\n")
            idle.append(s)
        except OSError:
            break
    time.sleep(0.5)
    lat, failed = [], 0
    for _ in range(n):
        t = time.perf_counter()
        try:
            s = socket.create_connection((host, port), timeout=5)
            s.settimeout(5)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            s.close()
            if not data.startswith(b"HTTP/1.1 200"):
                failed += 1
                continue
        except OSError:
            failed += 1
            continue
        lat.append((time.perf_counter() - t) * 1000)
    lat.sort()
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")
    print(f"idle={len(idle)} requests={n} ok={len(lat)} failed={failed} "
          f"p50={pct(0.5):.2f}ms p99={pct(0.99):.2f}ms max={(lat[-1] if lat else float('nan')):.2f}ms")
    for s in idle:
        s.close()

main()
