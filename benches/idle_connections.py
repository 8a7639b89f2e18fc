"""What an idle keep-alive HTTP/1.1 connection costs the gateway in memory.

Starts the gateway on its embedded default (the built-in demo upstream) on a free port of
127.0.0.1, opens CONNECTIONS keep-alive connections, sends one request on each and reads its
response, holds them all open and prints the gateway's RSS before and after, and the cost a
connection. Browsers keep such connections open between a dashboard's requests, so a gateway
in front of many users holds thousands of them.

    python3 benches/idle_connections.py [GATEWAY_BINARY] [CONNECTIONS]
    python3 benches/idle_connections.py target/pgo/portcullis 10000
"""

import asyncio
import re
import resource
import subprocess
import sys
import threading
import time


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


async def one_request(port: int, held: list) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/plain\r\n\r\n")
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = head.split(b" ", 2)[1]
    if status != b"200":
        raise RuntimeError(f"the gateway answered {status.decode()}")
    length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    if length is None:
        raise RuntimeError("a response without Content-Length")
    await reader.readexactly(int(length.group(1)))
    held.append(writer)


async def hold(port: int, count: int, pid: int) -> None:
    before = rss_mib(pid)
    held: list = []
    for start in range(0, count, 500):
        await asyncio.gather(*(one_request(port, held) for _ in range(min(500, count - start))))
    await asyncio.sleep(2)
    after = rss_mib(pid)
    print(
        f"{len(held)} idle keep-alive connections: gateway RSS {before:.1f} -> {after:.1f} MiB, "
        f"{(after - before) * 1024 / len(held):.1f} KiB a connection"
    )
    for writer in held:
        writer.close()


def main() -> None:
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/portcullis"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < count + 100:
        sys.exit(f"the descriptor limit ({hard}) is below {count} connections")
    # The gateway inherits the raised limit; it needs one descriptor a connection too.
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    gateway = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={"RUST_LOG": "warn", "PATH": "/usr/bin:/bin"},
    )
    try:
        port = None
        deadline = time.monotonic() + 30
        while port is None and time.monotonic() < deadline:
            line = gateway.stdout.readline()
            if not line:
                break
            found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if found:
                port = int(found.group(1))
        if port is None:
            sys.exit("the gateway did not say where it listens")
        # Keep reading its output, or a full pipe would stall the gateway's next log line.
        threading.Thread(target=gateway.stdout.read, daemon=True).start()
        asyncio.run(hold(port, count, gateway.pid))
    finally:
        gateway.terminate()
        gateway.wait(timeout=30)


if __name__ == "__main__":
    main()
