# A test service for socket activation (tests/sockets.rs, tests/systemd_sockets.rs, bench/run):
# it binds nothing and takes fd 3 as sd_listen_fds(3) describes, checking LISTEN_PID and
# LISTEN_FDS; it answers each connection with "<VERSION> <pid> <LISTEN_PID> <LISTEN_FDNAMES>"
# and, on SIGTERM, finishes the connection in hand and exits: what is still queued waits in
# the socket for the next instance.
import os, select, signal, socket, sys
if os.environ.get("LISTEN_PID") != str(os.getpid()) or os.environ.get("LISTEN_FDS") != "1":
    print("not socket-activated:", os.environ.get("LISTEN_PID"), os.getpid(), os.environ.get("LISTEN_FDS"), flush=True)
    sys.exit(3)
version = os.environ.get("VERSION", "?")
sock = socket.socket(fileno=3)
sock.setblocking(False)
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
open(f"ready-{version}", "w").close()
print(f"{version} serving as {os.getpid()}", flush=True)
while not stop:
    try:
        r, _, _ = select.select([sock], [], [], 0.05)
    except InterruptedError:
        continue
    if not r:
        continue
    try:
        conn, _ = sock.accept()
    except (BlockingIOError, InterruptedError):
        continue  # another instance took it
    conn.setblocking(True)
    answer = f"{version} {os.getpid()} {os.environ['LISTEN_PID']} {os.environ['LISTEN_FDNAMES']}\n"
    conn.sendall(answer.encode())
    conn.close()
