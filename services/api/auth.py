"""Bearer tokens with roles (viewer < lead < admin) and scopes (contract 7).

Secrets are kept only as SHA-256 digests and compared in constant time; a token may be
scoped to sites or queues, and then sees and acts on those alone.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from services.api.settings import ROLES, Role, TokenSpec
from shared.errors import FloorwatchError


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    sites: tuple[str, ...] = ()  # empty: every site
    queues: tuple[str, ...] = ()  # empty: every queue

    def may(self, needed: Role) -> bool:
        return ROLES.index(self.role) >= ROLES.index(needed)

    @property
    def scoped(self) -> bool:
        return bool(self.sites or self.queues)

    def sees(self, queue_id: str, sites: Iterable[str] = ()) -> bool:
        """Whether this token may see a queue (`sites`: the sites the queue is served at)."""
        if self.queues and queue_id not in self.queues:
            return False
        return not self.sites or any(site in self.sites for site in sites)


class AuthError(FloorwatchError):
    """401 (no or unknown token) or 403 (a role too low)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message, status=status)


class Tokens:
    """The API's tokens, by digest."""

    def __init__(self, specs: Iterable[TokenSpec]) -> None:
        self._tokens = [
            (digest(s.secret), Principal(s.name, s.role, s.sites, s.queues)) for s in specs
        ]

    def identify(self, token: str | None) -> Principal | None:
        if not token:
            return None
        presented = digest(token)
        found: Principal | None = None
        for stored, principal in self._tokens:  # every entry compared: constant time
            if hmac.compare_digest(stored, presented):
                found = principal
        return found

    def require(self, token: str | None, needed: Role) -> Principal:
        principal = self.identify(token)
        if principal is None:
            raise AuthError(401, "missing or wrong bearer token")
        if not principal.may(needed):
            raise AuthError(403, f"role {principal.role} may not do this; {needed} needed")
        return principal
