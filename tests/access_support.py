"""People for tests of guarded services: one per role, as lib.access.User (the role decides what each may do)."""
from __future__ import annotations

from lib.access import User

ADMIN = User(email="ada@example.com", name="Ada Admin", role="admin")
OPERATOR = User(email="ana@example.com", name="Ana Rao", role="operator")
OTHER_OPERATOR = User(email="ben@example.com", name="Ben Stone", role="operator")
VIEWER = User(email="vic@example.com", name="Vic Viewer", role="viewer")
