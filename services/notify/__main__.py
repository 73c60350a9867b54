"""`python -m services.notify`: push alerts to on-call leads."""

from __future__ import annotations

import uvicorn

from services.notify.service import NotifySettings, create_app
from shared.logs import setup_logging


def main() -> None:
    settings = NotifySettings()
    setup_logging(settings.log_level)
    uvicorn.run(
        create_app(settings), host=settings.notify_host, port=settings.notify_port, log_config=None
    )


if __name__ == "__main__":
    main()
