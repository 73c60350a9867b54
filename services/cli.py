"""The `floorwatch` command: up, replay, scenario."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from shared.files import read_bounded
from shared.runtime import tune_gc
from shared.timefmt import parse_ts

MAX_CONFIG_BYTES = 16 << 20  # --forecast and --settings files


def _config(path_text: str | None, flag: str) -> object:
    """The JSON of a --forecast or --settings file ({} when not given)."""
    if path_text is None:
        return {}
    data = read_bounded(Path(path_text), MAX_CONFIG_BYTES, f"{flag} {path_text[:200]}")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{flag} {path_text[:200]}: not JSON: {exc}") from None


def _replay(args: argparse.Namespace) -> int:
    from services.monitor.replay import forecasts_from, queue_settings_from, replay_ticks

    try:
        at = parse_ts(args.at)
    except ValueError as exc:
        print(f"--at: {exc}", file=sys.stderr)
        return 2
    path = Path(args.events)
    if not path.is_file():
        print(f"{path}: no such file", file=sys.stderr)
        return 2
    try:
        forecasts = forecasts_from(_config(args.forecast, "--forecast"))
        settings = queue_settings_from(_config(args.settings, "--settings"))
    except ValueError as exc:
        print(f"floorwatch replay: {exc}", file=sys.stderr)
        return 2
    with path.open("rb") as f:
        result = replay_ticks(f, at, args.tick_s, settings, forecasts)
    for b in result.bad:
        print(f"{path}:{b.line}: skipped: {'; '.join(b.errors)}", file=sys.stderr)
    body = result.body
    if args.alerts:
        body = {**body, "alerts": [r.as_json() for r in result.alerts]}
    sys.stdout.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def _scenario(args: argparse.Namespace) -> int:
    from services.simulator.closed_loop import compare_table, plot, run_scenario
    from services.simulator.scenario import load_scenario

    try:
        scenario = load_scenario(args.name)
    except ValueError as exc:
        print(f"floorwatch scenario: {exc}", file=sys.stderr)
        return 2
    if args.compare:
        off = run_scenario(scenario, args.seed, dispatch=False)
        result = run_scenario(scenario, args.seed, dispatch=True)
        sys.stdout.write(compare_table(off, result))
    else:
        result = run_scenario(scenario, args.seed, dispatch=args.dispatch == "on")
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    if args.plot:
        plot(result, args.plot)
    return 0


def _up(args: argparse.Namespace) -> int:
    from services.up import run_stack

    return run_stack(
        kafka=args.kafka,
        redis_url=args.redis,
        ingest_port=args.ingest_port,
        api_port=args.api_port,
        dispatch=args.dispatch,
        simulator=not args.no_sim,
    )


def _tail_queue_log(args: argparse.Namespace) -> int:
    import os

    from services.ingest.tailer import tail_queue_log

    token = args.token or os.environ.get("FLOORWATCH_TAIL_TOKEN", "")
    if not token:
        print("--token or FLOORWATCH_TAIL_TOKEN: ingest's bearer secret", file=sys.stderr)
        return 2
    state = Path(args.state) if args.state else None
    return tail_queue_log(Path(args.path), args.ingest, token, state, args.poll_s)


def _rebuild_intervals(args: argparse.Namespace) -> int:
    from services.monitor.rebuild import main as rebuild

    return rebuild(["--from", args.start, "--to", args.end, "--tick-s", str(args.tick_s)])


def _tick_s(text: str) -> float:
    value = float(text)
    if not 0.1 <= value <= 60:
        raise argparse.ArgumentTypeError("between 0.1 and 60 seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="floorwatch", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start the whole stack on this machine")
    up.add_argument("--kafka", metavar="HOST:PORT", help="use this broker instead of a local one")
    up.add_argument("--redis", metavar="URL", help="use this Redis instead of a local one")
    up.add_argument("--ingest-port", type=int, default=8001)
    up.add_argument("--api-port", type=int, default=8000)
    up.add_argument("--dispatch", choices=["auto", "approve"], default="auto")
    up.add_argument("--no-sim", action="store_true", help="do not start the simulator")
    up.set_defaults(func=_up)

    rp = sub.add_parser("replay", help="print the queues at --at for a file of events")
    rp.add_argument("events", metavar="EVENTS.jsonl")
    rp.add_argument("--at", required=True, metavar="TS", help="RFC 3339 time with offset")
    rp.add_argument("--forecast", metavar="FILE", help="PUT /v1/forecast bodies keyed by queue")
    rp.add_argument("--settings", metavar="FILE", help="queue settings keyed by queue")
    rp.add_argument("--tick-s", type=_tick_s, default=2.0, help="seconds between ticks (default 2)")
    rp.add_argument("--alerts", action="store_true", help="also print the alert records at --at")
    rp.set_defaults(func=_replay)

    sc = sub.add_parser("scenario", help="run a named scenario in simulated time, print JSON")
    sc.add_argument("name", metavar="NAME", help="a shipped scenario's name or a .json file")
    sc.add_argument("--dispatch", choices=["on", "off"], default="on")
    sc.add_argument("--seed", type=int, default=1)
    sc.add_argument("--compare", action="store_true", help="dispatch off, then on: a table")
    sc.add_argument("--plot", metavar="FILE.png", help="draw the run (the 'on' one with --compare)")
    sc.set_defaults(func=_scenario)

    rb = sub.add_parser(
        "rebuild-intervals",
        help="recompute the 15-minute intervals of a span from Kafka into Redis "
        "(FLOORWATCH_* settings name the broker and Redis)",
    )
    stamp = {"required": True, "metavar": "TS", "help": "RFC 3339, with offset"}
    rb.add_argument("--from", dest="start", **stamp)  # type: ignore[arg-type]
    rb.add_argument("--to", dest="end", **stamp)  # type: ignore[arg-type]
    rb.add_argument("--tick-s", type=_tick_s, default=60.0, help="seconds between ticks")
    rb.set_defaults(func=_rebuild_intervals)

    tq = sub.add_parser("tail-queue-log", help="follow Asterisk's queue_log into ingest")
    tq.add_argument(
        "path", metavar="PATH", help="the queue_log file, e.g. /var/log/asterisk/queue_log"
    )
    tq.add_argument("--ingest", required=True, metavar="URL", help="ingest's base URL")
    tq.add_argument("--token", help="ingest's bearer secret (or FLOORWATCH_TAIL_TOKEN)")
    tq.add_argument("--state", metavar="FILE", help="where the position is kept")
    tq.add_argument("--poll-s", type=float, default=0.5, help="seconds between looks")
    tq.set_defaults(func=_tail_queue_log)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tune_gc()
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
