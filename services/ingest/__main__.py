"""`python -m services.ingest`: run the ingest service."""

from __future__ import annotations

import uvicorn

from services.ingest.app import create_app
from services.ingest.settings import IngestSettings
from shared.logs import setup_logging


def main() -> None:
    settings = IngestSettings()
    setup_logging(settings.log_level)
    app = create_app(settings)
    uvicorn.run(app, host=settings.ingest_host, port=settings.ingest_port, log_config=None)


if __name__ == "__main__":
    main()
