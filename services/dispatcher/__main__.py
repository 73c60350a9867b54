"""`python -m services.dispatcher`: run the dispatcher."""

from __future__ import annotations

from services.dispatcher.app import create_app
from services.dispatcher.settings import DispatcherSettings
from shared.http import serve_forever


def main() -> None:
    settings = DispatcherSettings()
    serve_forever(
        create_app(settings), settings, settings.dispatcher_host, settings.dispatcher_port
    )


if __name__ == "__main__":
    main()
