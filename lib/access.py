"""Who may do what: the person using the app (`User`), their role from settings, and `require`.

Three roles, each allowed everything the one before it may do:

* **viewer**: lists, results, history; downloads.
* **operator**: spends credits and writes to CleverTap: verify, add and rename lists (CSV, audience
  counts and pulls), export, stop/resume/retry, undo, cancel, decide about an uncertain upload.
* **admin**: the keys and the irreversible: connect projects, enter passcodes and the Clearout token,
  remove connections, delete lists.

Roles come from settings (AUTH_ADMINS, AUTH_OPERATORS, AUTH_VIEWERS: e-mail addresses and @domain
entries). A person on no list gets AUTH_DEFAULT_ROLE, which is unset by default: no access, and the
app says whom to ask. Guarded services take `user=` and call `require` themselves: hiding a button
is a courtesy, the refusal is here.
"""
from __future__ import annotations

import getpass
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from lib.errors import UserError
from lib.settings import ROLE_NAMES, Settings

Role = Literal["viewer", "operator", "admin"]
ROLES: tuple[Role, ...] = cast("tuple[Role, ...]", ROLE_NAMES)
VIEWER: Role = "viewer"
OPERATOR: Role = "operator"
ADMIN: Role = "admin"
ROLE_WORDS: dict[Role, str] = {"viewer": "Viewer", "operator": "Operator", "admin": "Admin"}
ROLE_MEANS: dict[Role, str] = {
    "viewer": "see lists, results and history, and download them",
    "operator": "verify (spends credits), add lists, export to CleverTap, undo, cancel",
    "admin": "connect projects, enter passcodes and the Clearout token, remove connections, delete lists",
}
LOCAL_NAME = "Local user — no sign-in"


class NotAllowed(UserError):
    """The signed-in person's role does not allow this; the message says which role it needs."""


@dataclass(frozen=True)
class User:
    """A person using the app, as the records name them (`email`) and as the pages greet them (`name`)."""
    email: str
    name: str
    role: Role
    local: bool = False  # the one user of an app without sign-in (loopback, or the network opt-out)

    def can(self, role: Role) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)

    @property
    def label(self) -> str:
        """`Ana Rao <ana@example.com>`, or the address alone."""
        return f"{self.name} <{self.email}>" if self.name and self.name != self.email else self.email


def local_user() -> User:
    """The one user of an app without sign-in: every right (it is the person at this machine, or a
    deliberate opt-out); named after the OS user so the records still say who ran the app."""
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "local"
    return User(email=f"{who}@localhost", name=LOCAL_NAME, role=ADMIN, local=True)


def require(user: User, role: Role, action: str) -> None:
    """Refuse `action` (words: "Starting a verification") unless `user` has at least `role`.

    Raises:
        NotAllowed: the role is too low, or `user` is not a User (a guarded call without one).
    """
    if not isinstance(user, User):
        raise NotAllowed(f"{action} needs a signed-in person.")
    if not user.can(role):
        raise NotAllowed(f"{action} needs the {role} role; {user.email} is a {user.role}. Ask an admin of "
                         "this app for it.")


def role_for(settings: Settings, email: str) -> Role | None:
    """The role of an address: an exact address in a list wins over @domain entries; among equally
    specific entries the highest role wins; else AUTH_DEFAULT_ROLE (None: no access)."""
    email = email.strip().lower()
    if "@" not in email:
        return None
    domain = "@" + email.rpartition("@")[2]
    lists: dict[Role, tuple[str, ...]] = {ADMIN: settings.auth_admins, OPERATOR: settings.auth_operators,
                                          VIEWER: settings.auth_viewers}
    for entry in (email, domain):
        found = [role for role in reversed(ROLES) if entry in lists[role]]
        if found:
            return found[0]
    return cast("Role | None", settings.auth_default_role)


@dataclass(frozen=True)
class SignIn:
    """What a signed-in person's identity claims give: a User, or why there is none."""
    user: User | None
    email: str
    name: str
    refusal: str | None = None


def signed_in(settings: Settings, claims: Mapping[str, Any]) -> SignIn:
    """The User an identity provider's claims (st.user) make, with the role from settings.

    An address the provider marks unverified (`email_verified: false`) gets no role: anyone can
    type any address into some providers' sign-up forms, and @domain entries trust the domain.
    """
    email = str(claims.get("email") or "").strip().lower()
    name = " ".join(str(claims.get("name") or "").split()) or email
    if not email:
        return SignIn(None, "", name, "Your identity provider did not send an e-mail address, which this app "
                                      "needs to know your role: ask an admin to add the email scope/claim.")
    if claims.get("email_verified") is False:
        return SignIn(None, email, name, f"Your identity provider says {email} is not verified: verify it there, "
                                         "then sign in again.")
    role = role_for(settings, email)
    if role is None:
        return SignIn(None, email, name, f"You are signed in as {email}, but this app has not given you a role. "
                                         "Ask an admin of this app to add you (AUTH_VIEWERS, AUTH_OPERATORS or "
                                         "AUTH_ADMINS).")
    return SignIn(User(email=email, name=name, role=role), email, name)
