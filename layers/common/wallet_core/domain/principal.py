"""Who is calling, as established by the JWT authorizer."""

from __future__ import annotations

from dataclasses import dataclass

ADMIN_SCOPE = "wallet:admin"


@dataclass(frozen=True)
class Principal:
    subject: str
    scopes: frozenset[str] = frozenset()

    @property
    def is_admin(self) -> bool:
        return ADMIN_SCOPE in self.scopes

    def can_see_owner(self, owner_id: str) -> bool:
        return self.is_admin or self.subject == owner_id
