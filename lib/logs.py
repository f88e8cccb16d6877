"""A log filter that masks every known secret, wherever a log record is headed.

Secrets are registered once (by the vault, when a passcode or token enters the process); the
filter sits on the handlers, because a filter on a logger does not see records that propagate up
from child loggers.
"""
from __future__ import annotations

import logging
import threading

MASK = "***"
_MIN_SECRET_LENGTH = 4  # masking "a" everywhere would shred every message

_lock = threading.Lock()
# Process-wide by nature: a secret known to any session must be masked in every log line.
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Mask `value` in every log record from now on."""
    if value and len(value) >= _MIN_SECRET_LENGTH:
        with _lock:
            _secrets.add(value)


def mask(text: str) -> str:
    """`text` with every registered secret replaced by ***."""
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class SecretMaskingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask(message)
        if masked != message or record.exc_info:
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.msg, record.args = masked, None
            if record.exc_text:
                record.exc_text = mask(record.exc_text)
        return True


_FILTER = SecretMaskingFilter()


def install_secret_filter(*logger_names: str) -> None:
    """Attach the masking filter to the handlers of the root logger and of `logger_names`."""
    for name in ("", *logger_names):
        for handler in logging.getLogger(name).handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)


_LIB_HANDLER_NAME = "lib-masked"


def configure_logging(level: int = logging.INFO) -> None:
    """Give every `lib.*` logger one handler that masks secrets, and keep its records from reaching
    handlers we do not control (Python's fallback handler, or ones added later by a library).

    Idempotent: the Streamlit process calls it on every runtime start.
    """
    lib = logging.getLogger("lib")
    if not any(h.get_name() == _LIB_HANDLER_NAME for h in lib.handlers):
        handler = logging.StreamHandler()
        handler.set_name(_LIB_HANDLER_NAME)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(_FILTER)
        lib.addHandler(handler)
    lib.setLevel(level)
    lib.propagate = False
    install_secret_filter("streamlit")
