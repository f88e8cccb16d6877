"""Clearout verdicts as a pure function of the normalised address: same address, same answer, every run.

Over the generated dataset (see dataset.py) the spread is about 73% valid, 14% invalid, 8.5%
catch-all and 4.5% unknown. Domain facts (free, disposable, typo, catch-all, MX, SMTP provider) come from small tables
for well-known domains and from a hash of the domain name for every other domain, so an address the
sandbox never generated still gets a stable, plausible answer.
"""
from __future__ import annotations

import zlib
from functools import lru_cache
from typing import Any, NamedTuple

from lib import columns
from lib.emails import is_valid_syntax, normalise_email

VALID, INVALID, CATCH_ALL, UNKNOWN = "valid", "invalid", "catch_all", "unknown"

# Sub-status code -> (description, bounce type). Descriptions as listed by Clearout; bounce types
# "hard"/"soft" in lower case (the live casing is UNCONFIRMED; lib/columns capitalises for display).
SUB_STATUS: dict[int, tuple[str, str]] = {
    200: ("Success", ""),
    601: ("Email is part of allowlist", ""),
    603: ("Domain is part of allowlist", ""),
    400: ("Syntax error", "hard"),
    401: ("Probably Spamtrap/Honeypot", "soft"),
    403: ("Domain was not found", "hard"),
    404: ("Not a Mail Server", "hard"),
    406: ("Mailbox was not found", "hard"),
    413: ("Mailbox quota exceeded", "soft"),
    419: ("Insufficient System Resource", "soft"),
    421: ("Message receiving limit reached", "soft"),
    428: ("Account inactive due to quota exceeded", "soft"),
    602: ("Email is part of blocklist", "hard"),
    604: ("Domain is part of blocklist", "hard"),
    606: ("Unsupported character", "hard"),
    701: ("Account disabled", "hard"),
    411: ("Catch All mail server", ""),
    402: ("Mail server connection timeout", ""),
    405: ("Mail server error", ""),
    407: ("greylisting", ""),
    412: ("Unable to determine", ""),
    414: ("Retry later", ""),
    416: ("No Answer From Authoritative Server", ""),
    417: ("DNS Query Timeout", ""),
    418: ("DNS Query Unhandled Error", ""),
    420: ("Mail server command timeout", ""),
}
_STATUS_OF_SUB = {
    **{c: VALID for c in (200, 601, 603)},
    **{c: INVALID for c in (400, 401, 403, 404, 406, 413, 419, 421, 428, 602, 604, 606, 701)},
    411: CATCH_ALL,
    **{c: UNKNOWN for c in (402, 405, 407, 412, 414, 416, 417, 418, 420)},
}

# Free providers: domain -> (SMTP provider, MX record).
FREE_DOMAINS: dict[str, tuple[str, str]] = {
    "gmail.com": ("Google", "gmail-smtp-in.l.google.com"),
    "googlemail.com": ("Google", "gmail-smtp-in.l.google.com"),
    "yahoo.com": ("Yahoo", "mta5.am0.yahoodns.net"),
    "yahoo.co.in": ("Yahoo", "mta7.am0.yahoodns.net"),
    "ymail.com": ("Yahoo", "mta6.am0.yahoodns.net"),
    "aol.com": ("Yahoo", "mx-aol.mail.gm0.yahoodns.net"),
    "outlook.com": ("Microsoft", "outlook-com.olc.protection.outlook.com"),
    "hotmail.com": ("Microsoft", "hotmail-com.olc.protection.outlook.com"),
    "live.com": ("Microsoft", "live-com.olc.protection.outlook.com"),
    "msn.com": ("Microsoft", "msn-com.olc.protection.outlook.com"),
    "icloud.com": ("Apple", "mx01.mail.icloud.com"),
    "me.com": ("Apple", "mx02.mail.icloud.com"),
    "rediffmail.com": ("Rediff", "mx.rediffmail.rediff.akadns.net"),
    "protonmail.com": ("Proton", "mail.protonmail.ch"),
    "proton.me": ("Proton", "mail.protonmail.ch"),
    "zoho.com": ("Zoho", "mx.zoho.com"),
    "gmx.com": ("GMX", "mx00.gmx.net"),
    "mail.com": ("GMX", "mx00.mail.com"),
}
DISPOSABLE_DOMAINS: dict[str, tuple[str, str]] = {
    "mailinator.com": ("Mailinator", "mail.mailinator.com"),
    "guerrillamail.com": ("Guerrilla Mail", "mx1.guerrillamail.com"),
    "10minutemail.com": ("10 Minute Mail", "mx.10minutemail.com"),
    "yopmail.com": ("YOPmail", "mx.yopmail.com"),
    "tempmail.dev": ("Temp Mail", "mx.tempmail.dev"),
    "trashmail.com": ("TrashMail", "mx.trashmail.com"),
    "sharklasers.com": ("Guerrilla Mail", "mx1.sharklasers.com"),
    "dispostable.com": ("Dispostable", "mx.dispostable.com"),
}
# Typo domains -> the domain the user most likely meant (Clearout's "suggested email").
TYPO_DOMAINS: dict[str, str] = {
    "gmial.com": "gmail.com", "gmal.com": "gmail.com", "gamil.com": "gmail.com",
    "gmail.co": "gmail.com", "gmail.con": "gmail.com", "gnail.com": "gmail.com",
    "yaho.com": "yahoo.com", "yahooo.com": "yahoo.com", "yahoo.con": "yahoo.com",
    "hotmial.com": "hotmail.com", "hotmai.com": "hotmail.com", "hotmail.co": "hotmail.com",
    "outlok.com": "outlook.com", "outllook.com": "outlook.com", "iclod.com": "icloud.com",
    "rediffmial.com": "rediffmail.com",
}
ROLE_LOCALS = frozenset({
    "info", "support", "sales", "admin", "contact", "hello", "help", "billing", "marketing",
    "noreply", "no-reply", "office", "team", "hr", "jobs", "careers", "webmaster", "postmaster",
    "accounts", "enquiries", "enquiry", "orders", "service", "feedback", "press", "media",
})
# Corporate mail hosts for domains not in the tables above, picked by a hash of the domain.
_CORPORATE_PROVIDERS = ("Google", "Microsoft", "Zoho", "Proofpoint", "Mimecast", "Self-hosted")
RESERVED_DOMAINS = frozenset({"example.com", "example.org", "example.net", "test.com", "invalid"})

# The documented Clearout test addresses (`<x>@example.com`): fixed answers, no credits.
# x -> (sub-status, flags, suggested address). Flags: d(isposable) f(ree) r(ole) g(ibberish).
_TEST_ADDRESSES: dict[str, tuple[int, str, str]] = {
    "valid": (200, "", ""),
    "invalid": (406, "", ""),
    "catch_all": (411, "", ""),
    "unknown": (412, "", ""),
    "safe_to_send_yes": (200, "", ""),
    "safe_to_send_no": (406, "", ""),
    "safe_to_send_risky": (411, "", ""),
    "disposable": (200, "d", ""),
    "role": (200, "r", ""),
    "free": (200, "f", ""),
    "gibberish": (200, "g", ""),
    "hard_bounce": (406, "", ""),
    "soft_bounce": (413, "", ""),
    "suggested_email_address": (406, "", "valid@example.com"),
    "syntax_error": (400, "", ""),
    "greylisted": (407, "", ""),
    "spamtrap": (401, "", ""),
    "blocklist_email_address": (602, "", ""),
    "allowlist_email_address": (601, "", ""),
    "blocklist_domain": (604, "", ""),
    "allowlist_domain": (603, "", ""),
    "domain_not_found": (403, "", ""),
    "not_a_mailserver": (404, "", ""),
    "mailbox_not_found": (406, "", ""),
    "mailbox_quota_exceeded": (413, "", ""),
    "dns_query_timeout": (417, "", ""),
    "unroutable_mailserver": (405, "", ""),
    "overquota_and_inactive": (428, "", ""),
    "receiving_limit_reached": (421, "", ""),
}
TEST_DOMAIN = "example.com"

# Per-address outcome at an ordinary (not catch-all) domain, in thousandths, chosen so that the
# generated dataset lands at ~73/14/8.5/4.5% valid/invalid/catch-all/unknown (tests/sandbox check it).
_INVALID_SUBS = ((406, 92), (413, 8), (421, 5), (428, 4), (701, 5), (401, 3))
_UNKNOWN_SUBS = ((402, 10), (405, 7), (407, 12), (412, 7), (414, 5), (416, 3), (417, 4), (420, 4))
_INVALID_PER_MILLE = sum(w for _, w in _INVALID_SUBS)
_UNKNOWN_PER_MILLE = sum(w for _, w in _UNKNOWN_SUBS)
_VOWELS = frozenset("aeiouy")


class Verdict(NamedTuple):
    """Everything Clearout says about one address (API tokens, not display words)."""

    email: str
    status: str
    sub_code: int
    sub_desc: str
    safe_to_send: str
    disposable: bool
    free: bool
    role: bool
    gibberish: bool
    suggested: str
    bounce_type: str
    account: str
    domain: str
    mx_record: str
    smtp_provider: str
    time_taken: int
    is_test: bool

    @property
    def billable(self) -> bool:
        """Unknown results and the documented test addresses cost no credit."""
        return self.status != UNKNOWN and not self.is_test


def _hash(text: str) -> int:
    return zlib.crc32(text.encode("utf-8", "surrogatepass"))


def is_test_address(normalised: str | None) -> bool:
    if not normalised or not normalised.endswith("@" + TEST_DOMAIN):
        return False
    return normalised[: -len(TEST_DOMAIN) - 1] in _TEST_ADDRESSES


def looks_gibberish(local: str) -> bool:
    """Five consonants in a row in the letters of the local part: random-looking, not a name."""
    run = 0
    for char in local:
        if char.isalpha() and char not in _VOWELS:
            run += 1
            if run >= 5:
                return True
        else:
            run = 0
    return False


@lru_cache(maxsize=4096)
def _domain_facts(domain: str) -> tuple[str, str, bool, bool, str, str]:
    """domain -> (smtp_provider, mx_record, free, disposable, kind, suggestion domain).

    kind is "ok", "catch_all", "not_found" or "no_mx".
    """
    if domain in FREE_DOMAINS:
        provider, mx = FREE_DOMAINS[domain]
        return provider, mx, True, False, "ok", ""
    if domain in DISPOSABLE_DOMAINS:
        provider, mx = DISPOSABLE_DOMAINS[domain]
        return provider, mx, False, True, "ok", ""
    if domain in TYPO_DOMAINS:
        return "", "", False, False, "not_found", TYPO_DOMAINS[domain]
    if domain in RESERVED_DOMAINS:
        return "", "", False, False, "no_mx", ""
    h = _hash("domain:" + domain)
    bucket = h % 100
    provider = _CORPORATE_PROVIDERS[(h >> 8) % len(_CORPORATE_PROVIDERS)]
    if bucket < 2:
        return "", "", False, False, "not_found", ""
    mx = _corporate_mx(domain, provider)
    # Corporate gateways (Proofpoint, Mimecast, many self-hosted servers) accept every recipient.
    catch_all = bucket < 32 if provider in ("Proofpoint", "Mimecast", "Self-hosted") else bucket < 21
    return provider, mx, False, False, "catch_all" if catch_all else "ok", ""


def _corporate_mx(domain: str, provider: str) -> str:
    if provider == "Google":
        return "aspmx.l.google.com"
    if provider == "Microsoft":
        return domain.replace(".", "-") + ".mail.protection.outlook.com"
    if provider == "Zoho":
        return "mx.zoho.in"
    if provider == "Proofpoint":
        return f"mx0a-{_hash(domain) % 900000 + 100000:06d}.pphosted.com"
    if provider == "Mimecast":
        return "in-1.mimecast.com"
    return "mail." + domain


def _pick(subs: tuple[tuple[int, int], ...], value: int) -> int:
    for code, weight in subs:
        if value < weight:
            return code
        value -= weight
    return subs[-1][0]


def _time_taken(status: str, h: int) -> int:
    low, span = {VALID: (450, 2600), INVALID: (300, 2200), CATCH_ALL: (900, 3500),
                 UNKNOWN: (6000, 30000)}[status]
    return low + (h >> 12) % span


def verdict(address: object) -> Verdict:
    """The verdict for one address (any casing, surrounding spaces ignored)."""
    normalised = normalise_email(address) or ""
    local, _, domain = normalised.rpartition("@")
    if normalised.endswith("@" + TEST_DOMAIN) and local in _TEST_ADDRESSES:
        code, flags, suggested = _TEST_ADDRESSES[local]
        return _build(normalised, local, domain, code, "d" in flags, "f" in flags, "r" in flags,
                      "g" in flags, suggested, "Example Mail", "mx.example.com", is_test=True)
    h = _hash(normalised)
    if not is_valid_syntax(normalised):
        code = 606 if not normalised.isascii() else 400
        if not local:
            local, domain = normalised, ""
        return _build(normalised, local, domain, code, False, False, False, False, "", "", "")
    provider, mx, free, disposable, kind, typo_fix = _domain_facts(domain)
    role = local in ROLE_LOCALS
    gibberish = looks_gibberish(local)
    suggested = f"{local}@{typo_fix}" if typo_fix else ""
    if kind == "not_found":
        code = 403
    elif kind == "no_mx":
        code = 404
    elif kind == "catch_all":
        code = 411
    elif disposable:
        code = 200  # disposable inboxes accept mail; the flag and safe_to_send "no" carry the risk
    else:
        bucket = h % 1000
        if bucket < _INVALID_PER_MILLE:
            code = _pick(_INVALID_SUBS, bucket)
        elif bucket < _INVALID_PER_MILLE + _UNKNOWN_PER_MILLE:
            code = _pick(_UNKNOWN_SUBS, bucket - _INVALID_PER_MILLE)
        else:
            code = 200
    return _build(normalised, local, domain, code, disposable, free, role, gibberish, suggested,
                  provider, mx, h=h)


def _build(email: str, local: str, domain: str, code: int, disposable: bool, free: bool, role: bool,
           gibberish: bool, suggested: str, provider: str, mx: str, *, is_test: bool = False,
           h: int | None = None) -> Verdict:
    status = _STATUS_OF_SUB[code]
    desc, bounce = SUB_STATUS[code]
    if status == VALID:
        safe = "no" if disposable else "risky" if (role or gibberish) else "yes"
    elif status == CATCH_ALL:
        safe = "no" if disposable else "risky"
    elif status == INVALID:
        safe = "no"
    else:
        safe = "unknown"
    if status == INVALID and code in (400, 403, 404, 606):
        provider, mx = "", ""
    if h is None:
        h = _hash(email)
    return Verdict(email, status, code, desc, safe, disposable, free, role, gibberish, suggested,
                   bounce, local, domain, mx, provider, _time_taken(status, h), is_test)


def ai_verdict(v: Verdict) -> str:
    """Clearout's free-text summary; the wording is the sandbox's own."""
    if v.status == VALID:
        if v.disposable:
            return "The address works but is a temporary (disposable) inbox: do not send."
        if v.role or v.gibberish:
            return "The mailbox exists but is a role or random-looking address: send with care."
        return "The mailbox exists and accepts mail: safe to send."
    if v.status == CATCH_ALL:
        return "The domain accepts every address, so this mailbox cannot be confirmed: risky."
    if v.status == INVALID:
        return f"The address will bounce ({v.sub_desc.lower()}): do not send."
    return "The mail server did not give a clear answer; try again later. No credit was charged."


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def api_data(v: Verdict, verified_on: str, *, email_as_given: str | None = None) -> dict[str, Any]:
    """The instant-verify `data` object (identical to the bulk webhook payload per Clearout)."""
    return {
        "email_address": v.email if email_as_given is None else email_as_given,
        "safe_to_send": v.safe_to_send,
        "status": v.status,
        "verified_on": verified_on,
        "time_taken": v.time_taken,
        "sub_status": {"code": v.sub_code, "desc": v.sub_desc},
        "detail_info": {"account": v.account, "domain": v.domain, "mx_record": v.mx_record,
                        "smtp_provider": v.smtp_provider},
        "disposable": _yes_no(v.disposable),
        "free": _yes_no(v.free),
        "role": _yes_no(v.role),
        "gibberish": _yes_no(v.gibberish),
        "suggested_email_address": v.suggested,
        "bounce_type": v.bounce_type,
        "ai_verdict": ai_verdict(v),
        "profile": None,
    }


_STATUS_WORD = {VALID: columns.VALID, INVALID: columns.INVALID, CATCH_ALL: columns.CATCH_ALL,
                UNKNOWN: columns.UNKNOWN}
_SAFE_WORD = {"yes": columns.YES, "risky": columns.RISKY, "no": columns.NO, "unknown": columns.UNKNOWN}
_FLAG_WORD = {True: columns.YES, False: columns.NO}


def display_row(v: Verdict, verified_at: str) -> tuple[str, ...]:
    """The 15 result-file cells, in lib.columns.CLEAROUT_COLUMN_NAMES order, as display words."""
    return (
        _SAFE_WORD[v.safe_to_send], _STATUS_WORD[v.status], v.sub_desc, v.suggested,
        v.bounce_type.capitalize(), _FLAG_WORD[v.disposable], _FLAG_WORD[v.free], _FLAG_WORD[v.role],
        _FLAG_WORD[v.gibberish], v.account, v.domain, v.mx_record, v.smtp_provider, verified_at,
        str(v.time_taken),
    )


CANCELLED_DESC = "Request cancelled"


def cancelled_row(v: Verdict, verified_at: str) -> tuple[str, ...]:
    """A row the cancelled list never reached: Unknown, "Request cancelled", free."""
    return (columns.UNKNOWN, columns.UNKNOWN, CANCELLED_DESC, "", "", _FLAG_WORD[v.disposable],
            _FLAG_WORD[v.free], _FLAG_WORD[v.role], _FLAG_WORD[v.gibberish], v.account, v.domain,
            "", "", verified_at, "0")
