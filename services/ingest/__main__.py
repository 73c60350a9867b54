"""`python -m services.ingest`: run the ingest service."""

from __future__ import annotations

from services.ingest.app import create_app
from services.ingest.settings import IngestSettings
from shared.http import serve_forever


def main() -> None:
    settings = IngestSettings()
    serve_forever(create_app(settings), settings, settings.ingest_host, settings.ingest_port)


if __name__ == "__main__":
    main()
