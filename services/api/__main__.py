"""`python -m services.api`: run the API and the wall board."""

from __future__ import annotations

from services.api.app import create_app
from services.api.settings import ApiSettings
from shared.http import serve_forever


def main() -> None:
    settings = ApiSettings()
    serve_forever(create_app(settings), settings, settings.api_host, settings.api_port)


if __name__ == "__main__":
    main()
