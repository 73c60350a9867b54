"""`floorwatch up`: the whole stack on one machine, stopped cleanly on Ctrl-C or SIGTERM."""

from __future__ import annotations

import base64
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx

from shared.localstack import LocalServer, LocalStack, LocalStackError, free_port


@dataclass
class Service:
    name: str
    module: str
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Stack:
    """The processes `floorwatch up` owns, stopped in reverse order of start."""

    env: dict[str, str]
    services: list[Service] = field(default_factory=list)
    local: LocalStack | None = None
    logs: Path | None = None  # each service's output goes to NAME.log here (else the terminal)

    def start(self, service: Service) -> None:
        out = None
        if self.logs is not None:
            self.logs.mkdir(parents=True, exist_ok=True)
            out = (self.logs / f"{service.name}.log").open("ab")
        service.proc = subprocess.Popen(  # noqa: S603  # our own python and module
            [sys.executable, "-m", service.module],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT if out is not None else None,
            start_new_session=self.logs is not None,  # Ctrl-C reaches `up` alone: it stops them
        )
        if out is not None:
            out.close()
        self.services.append(service)

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        pending = list(self.services)
        while pending:
            if time.monotonic() > deadline:
                names = ", ".join(s.name for s in pending)
                raise LocalStackError(f"not ready after {timeout_s:g} s: {names}")
            for service in list(pending):
                if service.proc is not None and service.proc.poll() is not None:
                    code = service.proc.returncode
                    raise LocalStackError(f"{service.name} exited with {code}")
                try:
                    if httpx.get(f"{service.url}/readyz", timeout=2).status_code == 200:
                        pending.remove(service)
                except httpx.HTTPError:
                    pass
            time.sleep(0.3)

    def stop(self) -> None:
        for service in reversed(self.services):
            if service.proc is not None and service.proc.poll() is None:
                service.proc.terminate()
        for service in reversed(self.services):
            if service.proc is None:
                continue
            try:
                service.proc.wait(10)
            except subprocess.TimeoutExpired:
                service.proc.kill()
                service.proc.wait()
        if self.local is not None:
            self.local.stop()


def _stop_on_signal(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_stack(
    *,
    kafka: str | None,
    redis_url: str | None,
    ingest_port: int,
    api_port: int,
    dispatch: str,
    simulator: bool,
) -> int:
    """Start everything, print the URLs, tokens and `ready`, and wait for a signal."""
    signal.signal(signal.SIGTERM, _stop_on_signal)
    env = dict(os.environ)
    env.setdefault("FLOORWATCH_INGEST_TOKENS", f"sim:{secrets.token_urlsafe(16)}")
    env.setdefault(
        "FLOORWATCH_API_TOKENS",
        f"dev:admin:{secrets.token_urlsafe(16)},wall:viewer:{secrets.token_urlsafe(16)}",
    )
    tokens = [t.split(":", 1)[0] for t in env["FLOORWATCH_INGEST_TOKENS"].split(",")]
    if simulator and "sim" not in tokens:  # the simulator posts as a telephony system "sim"
        env["FLOORWATCH_INGEST_TOKENS"] += f",sim:{secrets.token_urlsafe(16)}"
    env["FLOORWATCH_INGEST_PORT"] = str(ingest_port)
    env["FLOORWATCH_API_PORT"] = str(api_port)
    env["FLOORWATCH_DISPATCH_MODE"] = dispatch
    stack = Stack(env)
    try:
        if kafka is None or redis_url is None:
            stack.local = LocalStack()
            stack.logs = stack.local.workdir / "logs"
            if kafka is None:
                stack.local.kafka = _start(stack.local, "kafka")
                kafka = stack.local.bootstrap
            if redis_url is None:
                stack.local.redis = _start(stack.local, "redis")
                redis_url = stack.local.redis_url
        env["FLOORWATCH_KAFKA_BOOTSTRAP"] = kafka
        env["FLOORWATCH_REDIS_URL"] = redis_url
        print(f"broker {kafka}, redis {redis_url}", flush=True)
        stack.start(Service("ingest", "services.ingest", ingest_port))
        monitor_port = free_port()
        env["FLOORWATCH_MONITOR_PORT"] = str(monitor_port)
        stack.start(Service("monitor", "services.monitor", monitor_port))
        stack.start(Service("api", "services.api", api_port))
        dispatcher_port = free_port()
        env["FLOORWATCH_DISPATCHER_PORT"] = str(dispatcher_port)
        stack.start(Service("dispatcher", "services.dispatcher", dispatcher_port))
        notify_port = free_port()
        env["FLOORWATCH_NOTIFY_PORT"] = str(notify_port)
        inbox_secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        env.setdefault("FLOORWATCH_NOTIFY_INBOX_SECRET", inbox_secret)
        stack.start(Service("notify", "services.notify", notify_port))
        stack.wait_ready()
        _demo_lead(env, api_port, notify_port)
        if simulator:
            sim_port = free_port()
            env["FLOORWATCH_SIM_PORT"] = str(sim_port)
            env["FLOORWATCH_INGEST_URL"] = f"http://127.0.0.1:{ingest_port}"
            env["FLOORWATCH_API_URL"] = f"http://127.0.0.1:{api_port}"
            stack.start(Service("simulator", "services.simulator", sim_port))
            stack.wait_ready()
        admin_secret = _secret(env["FLOORWATCH_API_TOKENS"], "admin")
        viewer_secret = _secret(env["FLOORWATCH_API_TOKENS"], "viewer")
        api = f"http://127.0.0.1:{api_port}"
        wall = f"{api}/?token={viewer_secret}" if viewer_secret else f"{api}/"
        print(f"wall board  {wall}   (a viewer token: fit for a TV)", flush=True)
        print(f"lead's view {api}/   (paste the admin token below when asked)", flush=True)
        print(f"api docs    {api}/docs", flush=True)
        inbox = f"{api}/inbox?token={viewer_secret}" if viewer_secret else f"{api}/inbox"
        print(f"lead inbox  {inbox}   (the demo lead's pushes)", flush=True)
        print(f"ingest      http://127.0.0.1:{ingest_port}/v1/events", flush=True)
        print(f"ingest tokens (source:secret): {env['FLOORWATCH_INGEST_TOKENS']}", flush=True)
        print(f"api tokens (name:role:secret): {env['FLOORWATCH_API_TOKENS']}", flush=True)
        if stack.logs is not None:
            print(f"service logs {stack.logs}/", flush=True)
        print("ready", flush=True)
        status = Status(api, admin_secret, sys.stdout.isatty())
        while all(s.proc is not None and s.proc.poll() is None for s in stack.services):
            status.show()
            time.sleep(2.0)
        status.end()
        failed = [
            s.name for s in stack.services if s.proc is not None and s.proc.poll() is not None
        ]
        print(f"stopped: {', '.join(failed)} exited", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("\nstopping the services, then the broker and Redis", flush=True)
        return 0
    except LocalStackError as exc:
        print(f"floorwatch up: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        stack.stop()


def _demo_lead(env: dict[str, str], api_port: int, notify_port: int) -> None:
    """Contract 8: a demo on-call lead whose pushes land in the local inbox (`/inbox`),
    unless the notify config already names leads (an existing Redis)."""
    api = f"http://127.0.0.1:{api_port}"
    secret = _secret(env["FLOORWATCH_API_TOKENS"], "admin")
    if not secret:
        return  # no admin token to configure it with
    admin = {"Authorization": f"Bearer {secret}"}
    current = httpx.get(f"{api}/v1/notify/config", headers=admin, timeout=5)
    if current.status_code == 200 and current.json().get("leads"):
        return
    hook = {"type": "webhook", "url": f"http://127.0.0.1:{notify_port}/inbox/hook",
            "secret": env["FLOORWATCH_NOTIFY_INBOX_SECRET"]}  # fmt: skip
    config = {
        "leads": [{"name": "Demo lead", "channels": [hook]}],
        "rotas": {"default": {"handovers": [{"weekday": 0, "at": "00:00",
                                             "leads": ["Demo lead"]}]}},
        "board_url": f"{api}/", "api_url": api,
    }  # fmt: skip
    answer = httpx.put(f"{api}/v1/notify/config", json=config, headers=admin, timeout=5)
    if answer.status_code != 200:
        raise LocalStackError(f"demo lead not configured: HTTP {answer.status_code}")


def _secret(tokens: str, role: str) -> str | None:
    """The secret of the first API token of this role (`name:role:secret`)."""
    for spec in tokens.split(","):
        parts = spec.strip().split(":", 2)
        if len(parts) == 3 and parts[1] == role:
            return parts[2].split(":", 1)[0]
    return None


@dataclass
class Status:
    """One line on the terminal, rewritten in place: what the floor looks like now."""

    api: str
    token: str | None
    tty: bool
    shown: bool = False

    def line(self) -> str:
        try:
            r = httpx.get(
                f"{self.api}/v1/queues",
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=2,
            )
            queues = r.json()["queues"] if r.status_code == 200 else []
        except (httpx.HTTPError, ValueError, KeyError):
            return "status: the API does not answer"
        if not queues:
            return "status: no queue yet"
        worst = max(queues, key=lambda q: (q["surge"]["tier"], q["sl_breach"], q["waiting"]))
        rate = next(iter(worst["windows"].values()))["answer_rate_live"]
        shown = f"{rate:.0%}" if rate is not None else "-"
        return (
            f"{time.strftime('%H:%M:%S')}  {len(queues)} queues; worst {worst['queue_id'][:40]}:"
            f" tier {worst['surge']['tier']}, answered in target {shown},"
            f" {worst['waiting']} waiting"
        )

    def show(self) -> None:
        if not self.tty:
            return  # a log or a pipe gets no status line
        print("\r\033[K" + self.line(), end="", flush=True)
        self.shown = True

    def end(self) -> None:
        if self.shown:
            print(flush=True)


def _start(local: LocalStack, which: str) -> LocalServer:
    from shared.localstack import kafka_server, redis_server

    server = kafka_server(local.workdir) if which == "kafka" else redis_server(local.workdir)
    server.start()
    return server
