"""Notify-path benchmarks, run side by side in one process and printed as ratios.

1. Email to 10 recipients through an SMTP server that waits 50 ms before answering each
   command (EHLO, MAIL, RCPT, DATA): `ha-notify master` against a Python 3 port of the
   tutorial's mail_notify.py (one connection and login per recipient, sequential).
   Target: ratio <= 0.5.
2. `ha-notify master` start to accepted, against a local server without delay.
   Target: median < 0.5 s.
3. `ha-notify master` against a server that accepts and never answers, deadline = 2 s.
   Target: returns within deadline + 1 s, delivery spooled.

Both commands are whole processes (interpreter start-up included), alternated run by run.

    .venv/bin/python benchmarks/bench_notify.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.smtp_server import SilentServer, SMTPServer

# aiosmtpd warns about its own attribute while authenticating (the test server's noise).
warnings.filterwarnings("ignore", message="Session.login_data is deprecated")
# aiosmtpd also logs that deprecation, once per login: not the benchmark's business.
logging.getLogger("mail.log").setLevel(logging.ERROR)
BIN = Path(sys.executable).parent / "ha-notify"
RECIPIENTS = [f"ops{i}@example.com" for i in range(10)]

# The tutorial's mail_notify.py, ported to Python 3 and nothing else changed: one SMTP
# connection and login per recipient, one after the other.
SEED = """
import smtplib, socket, sys
from email.header import Header
from email.mime.text import MIMEText
from email.utils import formataddr, parseaddr

def _format_addr(s):
    name, addr = parseaddr(s)
    return formataddr((Header(name, "utf-8").encode(), addr))

def send_mail(to_list, sub, content):
    mail_host, mail_port = "127.0.0.1", int(sys.argv[2])
    mail_user, mail_pass = "alerts", "bench-pass"
    me = mail_user + "<" + mail_user + "@example.com>"
    msg = MIMEText(content, "plain", "utf-8")
    msg["Subject"] = Header(sub, "utf-8").encode()
    msg["From"] = _format_addr(me)
    msg["To"] = _format_addr(to_list)
    s = smtplib.SMTP(mail_host, mail_port)
    try:
        s.login(mail_user, mail_pass)
        s.sendmail(me, to_list, msg.as_string())
        s.quit()
        return True
    except Exception as e:
        print(str(e))
        return False
    finally:
        s.close()

hostname = socket.gethostname()
ip = socket.gethostbyname(hostname)
content = "主机名: " + hostname + "\\n" + "IP地址：" + ip + "\\n" + sys.argv[1] + "状态被激活"
for mailto in RECIPIENTS:
    send_mail(mailto, "HAproxy状态切换报警", content)
""".replace("RECIPIENTS", repr(RECIPIENTS))


def config(folder: Path, port: int, deadline: float = 20.0, auth: bool = True) -> Path:
    path = folder / "config.toml"
    to = ", ".join(f'"{r}"' for r in RECIPIENTS)
    login = 'username = "alerts"\npassword = "bench-pass"\n' if auth else ""
    path.write_text(
        f'[general]\nstate_dir = "{folder / "state"}"\ndeadline = {deadline}\n'
        "flap_threshold = 1000\n"  # every round repeats MASTER: not flapping, a benchmark'
        f'[channels.mail]\ntype = "email"\nhost = "127.0.0.1"\nport = {port}\n'
        f'security = "none"\nfrom = "keepalived@lb1.example.com"\nto = [{to}]\n{login}'
    )
    path.chmod(0o600)
    return path


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
    return elapsed


def bench_fanout(rounds: int, folder: Path) -> tuple[float, float]:
    server = SMTPServer(users={"alerts": "bench-pass"})
    server.recorder.delay = 0.05
    server.start()
    try:
        cfg = config(folder, server.port)
        ours, seed = [], []
        for _ in range(rounds):
            ours.append(timed([str(BIN), "master", "-c", str(cfg)]))
            seed.append(timed([sys.executable, "-c", SEED, "master", str(server.port)]))
        assert len(server.messages) == rounds * 11, len(server.messages)
        return statistics.median(ours), statistics.median(seed)
    finally:
        server.stop()


def bench_latency(rounds: int, folder: Path) -> float:
    server = SMTPServer().start()
    try:
        cfg = config(folder, server.port, auth=False)
        times = []
        for _ in range(rounds):
            before = len(server.messages)
            start = time.perf_counter()
            proc = subprocess.Popen([str(BIN), "master", "-c", str(cfg)])
            while len(server.messages) == before:  # accepted = the server has the message
                time.sleep(0.001)
            times.append(time.perf_counter() - start)
            proc.wait()
        return statistics.median(times)
    finally:
        server.stop()


def bench_hung(folder: Path, deadline: float = 2.0) -> tuple[float, int]:
    server = SilentServer().start()
    try:
        cfg = config(folder, server.port, deadline=deadline, auth=False)
        elapsed = timed([str(BIN), "fault", "-c", str(cfg)])
        pending = len(list((folder / "state" / "spool" / "pending").glob("*.json")))
        return elapsed, pending
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    asyncio.set_event_loop_policy(None)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in ("fanout", "latency", "hung"):
            (root / name).mkdir()
        ours, seed = bench_fanout(args.rounds, root / "fanout")
        ratio = ours / seed
        print(f"email to 10 recipients, 50 ms per SMTP command ({args.rounds} rounds, medians)")
        print(f"  ha-notify master            {ours * 1000:8.0f} ms")
        print(f"  seed mail_notify.py (py3)   {seed * 1000:8.0f} ms")
        print(
            f"  ratio                       {ratio:8.2f}   target <= 0.50  "
            f"{'OK' if ratio <= 0.5 else 'MISSED'}"
        )
        latency = bench_latency(args.rounds, root / "latency")
        print(f"ha-notify master, start to accepted (local server, {args.rounds} rounds)")
        print(
            f"  median                      {latency * 1000:8.0f} ms   target < 500 ms  "
            f"{'OK' if latency < 0.5 else 'MISSED'}"
        )
        elapsed, pending = bench_hung(root / "hung")
        print("SMTP server that accepts and never answers, deadline = 2 s")
        print(
            f"  returned after              {elapsed * 1000:8.0f} ms   target <= 3000 ms  "
            f"{'OK' if elapsed <= 3.0 and pending == 1 else 'MISSED'} "
            f"({pending} delivery spooled)"
        )
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
