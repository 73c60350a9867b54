"""floorwatch's error hierarchy: one base with an HTTP status and a `retriable` flag,
answered as `{"error": ...}` by one handler per app (`shared.service.build_app`)."""

from __future__ import annotations

from collections.abc import Mapping


class FloorwatchError(Exception):
    """An error a client is told about; `status` is the HTTP status it is answered with."""

    status = 500
    retriable = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        details: list[str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.details = details or []
        self.headers = dict(headers or {})
        self.body = dict(body or {})  # extra fields of the answer (e.g. `rejected`)

    def as_json(self) -> dict[str, object]:
        body: dict[str, object] = {"error": self.message, **self.body}
        if self.details:
            body["errors"] = self.details
        return body


class BadRequest(FloorwatchError):
    status = 400


class Unauthorized(FloorwatchError):
    status = 401


class Forbidden(FloorwatchError):
    status = 403


class NotFound(FloorwatchError):
    status = 404


class Conflict(FloorwatchError):
    status = 409


class TooLarge(FloorwatchError):
    status = 413


class Invalid(FloorwatchError):
    status = 422


class RetryLater(FloorwatchError):
    """Nothing of the request was done; the client may send it again after `Retry-After`."""

    retriable = True

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, round(retry_after_s)))})


class TooMany(RetryLater):
    """A rate limit or a bound on in-flight work."""

    status = 429


class Unavailable(RetryLater):
    """A dependency (the broker, Redis) is away."""

    status = 503
