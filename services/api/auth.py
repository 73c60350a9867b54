"""Bearer tokens with roles: viewer < lead < admin (contract 7)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from services.api.settings import ROLES, Role
from shared.errors import FloorwatchError


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role

    def may(self, needed: Role) -> bool:
        return ROLES.index(self.role) >= ROLES.index(needed)


class AuthError(FloorwatchError):
    """401 (no or unknown token) or 403 (a role too low)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message, status=status)


class Tokens:
    def __init__(self, tokens: dict[str, tuple[str, Role]]) -> None:
        self._tokens = tokens

    def identify(self, token: str | None) -> Principal | None:
        if not token:
            return None
        for secret, (name, role) in self._tokens.items():
            if hmac.compare_digest(secret.encode(), token.encode()):
                return Principal(name, role)
        return None

    def require(self, token: str | None, needed: Role) -> Principal:
        principal = self.identify(token)
        if principal is None:
            raise AuthError(401, "missing or wrong bearer token")
        if not principal.may(needed):
            raise AuthError(403, f"role {principal.role} may not do this; {needed} needed")
        return principal
