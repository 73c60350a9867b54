"""`python -m services.notify`: push alerts to on-call leads."""

from __future__ import annotations

from services.notify.app import create_app
from services.notify.service import NotifySettings
from shared.http import serve_forever


def main() -> None:
    settings = NotifySettings()
    serve_forever(create_app(settings), settings, settings.notify_host, settings.notify_port)


if __name__ == "__main__":
    main()
