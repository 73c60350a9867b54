"""`python -m services.dispatcher`: run the dispatcher."""

from __future__ import annotations

import uvicorn

from services.dispatcher.app import create_app
from services.dispatcher.settings import DispatcherSettings
from shared.logs import setup_logging


def main() -> None:
    settings = DispatcherSettings()
    setup_logging(settings.log_level)
    app = create_app(settings)
    uvicorn.run(app, host=settings.dispatcher_host, port=settings.dispatcher_port, log_config=None)


if __name__ == "__main__":
    main()
