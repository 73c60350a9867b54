"""`python -m services.monitor`: run the monitor service."""

from __future__ import annotations

from services.monitor.app import create_app
from services.monitor.settings import MonitorSettings
from shared.http import serve_forever


def main() -> None:
    settings = MonitorSettings()
    serve_forever(create_app(settings), settings, settings.monitor_host, settings.monitor_port)


if __name__ == "__main__":
    main()
