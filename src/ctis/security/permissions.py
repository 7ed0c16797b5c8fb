"""Roles, permissions and the one authorisation function.

Permissions are named ``resource:action``.  Each role is granted a set of them
here and nowhere else; every route, export and service calls :func:`authorize`
(or :func:`can`) with the acting user, so "who may do what" has one answer that
a test can enumerate.

Agency scope is the second dimension: a user whose scope is ``own`` sees and
changes only records whose agency is theirs, unless they hold
``records:all_agencies``.  Identifying fields of victims and suspects are a
third: they are masked unless the role holds ``victims:identify`` or
``suspects:identify``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Permission(StrEnum):
    AGENCIES_READ = "agencies:read"
    AGENCIES_WRITE = "agencies:write"
    OPERATIONS_READ = "operations:read"
    OPERATIONS_WRITE = "operations:write"
    CASES_READ = "cases:read"
    CASES_WRITE = "cases:write"
    SUSPECTS_READ = "suspects:read"
    SUSPECTS_WRITE = "suspects:write"
    SUSPECTS_IDENTIFY = "suspects:identify"
    PROSECUTIONS_READ = "prosecutions:read"
    PROSECUTIONS_WRITE = "prosecutions:write"
    VICTIMS_READ = "victims:read"
    VICTIMS_WRITE = "victims:write"
    VICTIMS_IDENTIFY = "victims:identify"
    ASSISTANCE_READ = "assistance:read"
    ASSISTANCE_WRITE = "assistance:write"
    REFERRALS_READ = "referrals:read"
    REFERRALS_WRITE = "referrals:write"
    REPORTS_READ = "reports:read"
    REPORTS_EXPORT = "reports:export"
    RECORDS_EXPORT = "records:export"
    RECORDS_IMPORT = "records:import"
    RECORDS_ALL_AGENCIES = "records:all_agencies"
    USERS_MANAGE = "users:manage"
    AUDIT_READ = "audit:read"
    TOKENS_OWN = "tokens:own"
    ALLEGATIONS_READ = "allegations:read"
    ALLEGATIONS_WRITE = "allegations:write"
    RELEASES_PUBLISH = "releases:publish"
    SCREENING_READ = "screening:read"
    SCREENING_WRITE = "screening:write"
    #: Refer a screened post or network to investigators as a lead linked to a case.
    SCREENING_REFER = "screening:refer"
    LINKAGE_RUN = "linkage:run"
    LINKAGE_REVIEW = "linkage:review"


P = Permission

#: What each kind of record needs to be read and written.
READ = {
    "agencies": P.AGENCIES_READ, "operations": P.OPERATIONS_READ, "cases": P.CASES_READ,
    "suspects": P.SUSPECTS_READ, "prosecutions": P.PROSECUTIONS_READ, "victims": P.VICTIMS_READ,
    "assistance": P.ASSISTANCE_READ, "referrals": P.REFERRALS_READ,
}  # fmt: skip
WRITE = {
    "agencies": P.AGENCIES_WRITE, "operations": P.OPERATIONS_WRITE, "cases": P.CASES_WRITE,
    "suspects": P.SUSPECTS_WRITE, "prosecutions": P.PROSECUTIONS_WRITE, "victims": P.VICTIMS_WRITE,
    "assistance": P.ASSISTANCE_WRITE, "referrals": P.REFERRALS_WRITE,
}  # fmt: skip
IDENTIFY = {"victims": P.VICTIMS_IDENTIFY, "suspects": P.SUSPECTS_IDENTIFY}

_ALL_READ = set(READ.values())
_BASE = {P.REPORTS_READ, P.TOKENS_OWN, P.AGENCIES_READ}

ROLES: dict[str, frozenset[Permission]] = {
    # Runs the system: every permission.
    "administrator": frozenset(Permission),
    # Secretariat data officer: enters and imports records from every province, runs reports.
    "data_officer": frozenset(
        _BASE | _ALL_READ | set(WRITE.values()) | set(IDENTIFY.values())
        | {P.REPORTS_EXPORT, P.RECORDS_EXPORT, P.RECORDS_IMPORT, P.RECORDS_ALL_AGENCIES}
        | {P.ALLEGATIONS_READ, P.ALLEGATIONS_WRITE}
        | {P.LINKAGE_RUN, P.LINKAGE_REVIEW}  # person linkage: runs and the review queue
    ),
    # Police / prosecutor focal point: operations, cases, suspects, court outcomes; sees
    # victims only as counts and non-identifying facts.
    "investigator": frozenset(
        _BASE | {P.OPERATIONS_READ, P.OPERATIONS_WRITE, P.CASES_READ, P.CASES_WRITE, P.SUSPECTS_READ,
                 P.SUSPECTS_WRITE, P.SUSPECTS_IDENTIFY, P.PROSECUTIONS_READ, P.PROSECUTIONS_WRITE,
                 P.VICTIMS_READ, P.VICTIMS_WRITE, P.ALLEGATIONS_READ, P.ALLEGATIONS_WRITE,
                 P.SCREENING_READ, P.SCREENING_REFER}
    ),
    # Shelter / social worker: victims, their assistance and referrals, with identities.
    "social_worker": frozenset(
        _BASE | {P.VICTIMS_READ, P.VICTIMS_WRITE, P.VICTIMS_IDENTIFY, P.ASSISTANCE_READ,
                 P.ASSISTANCE_WRITE, P.REFERRALS_READ, P.REFERRALS_WRITE, P.CASES_READ,
                 P.ALLEGATIONS_READ}
    ),
    # Analyst: every record without identities, all agencies, report exports; screens recruitment
    # posts and follows their networks (prevention).
    "analyst": frozenset(_BASE | _ALL_READ | {P.REPORTS_EXPORT, P.RECORDS_ALL_AGENCIES, P.ALLEGATIONS_READ,
                                              P.SCREENING_READ, P.SCREENING_WRITE, P.SCREENING_REFER}),
    # Viewer: figures only, plus non-identifying record lists of their own agency.
    "viewer": frozenset(
        _BASE | {P.OPERATIONS_READ, P.CASES_READ, P.VICTIMS_READ, P.SUSPECTS_READ, P.ALLEGATIONS_READ}
    ),
}  # fmt: skip


class Forbidden(Exception):
    """The actor lacks a permission (HTTP 403)."""


@dataclass(frozen=True)
class Actor:
    """Who is acting: enough to authorise without touching the database."""

    id: int
    username: str
    role: str
    agency_id: int | None
    scope: str = "own"

    @property
    def permissions(self) -> frozenset[Permission]:
        return ROLES.get(self.role, frozenset())

    @property
    def all_agencies(self) -> bool:
        return self.scope == "all" or P.RECORDS_ALL_AGENCIES in self.permissions


SYSTEM = Actor(id=0, username="system", role="administrator", agency_id=None, scope="all")


def can(
    actor: Actor, permission: Permission, agency_id: int | None = None, *, check_agency: bool = False
) -> bool:
    """True if ``actor`` holds ``permission`` (and, when asked, may act on ``agency_id``'s records)."""
    if permission not in actor.permissions:
        return False
    if check_agency and not actor.all_agencies:
        return agency_id is not None and agency_id == actor.agency_id
    return True


def authorize(
    actor: Actor, permission: Permission, agency_id: int | None = None, *, check_agency: bool = False
) -> None:
    """Raise :class:`Forbidden` unless :func:`can` allows it."""
    if not can(actor, permission, agency_id, check_agency=check_agency):
        where = f" for agency {agency_id}" if check_agency else ""
        raise Forbidden(f"{actor.username} ({actor.role}) may not {permission.value}{where}")


def may_identify(actor: Actor, kind: str) -> bool:
    permission = IDENTIFY.get(kind)
    return permission is not None and permission in actor.permissions
