"""The one base of every error a person may read: pages catch `UserError` and show `.message`.

Every module's own error derives from it (the API clients' `ApiError`, `StoreError`, the services'
errors), so a page never needs to know which module failed, and never shows `str()` of an exception
it did not expect (which could carry anything, a secret included).
"""
from __future__ import annotations


class UserError(Exception):
    """What went wrong and what to do next, in words for the user of the app (`message`)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
