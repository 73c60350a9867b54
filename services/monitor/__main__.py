"""`python -m services.monitor`: run the monitor service."""

from __future__ import annotations

import uvicorn

from services.monitor.app import create_app
from services.monitor.settings import MonitorSettings
from shared.logs import setup_logging


def main() -> None:
    settings = MonitorSettings()
    setup_logging(settings.log_level)
    app = create_app(settings)
    uvicorn.run(app, host=settings.monitor_host, port=settings.monitor_port, log_config=None)


if __name__ == "__main__":
    main()
