"""Security-channel event templates with the EventData field names Windows really emits.

Each template holds every field, in order, of the Event XML schema Microsoft documents for its event
and version (Microsoft Learn, "Advanced security audit policy settings", the page of each event:
learn.microsoft.com/windows/security/threat-protection/auditing/event-4624 and so on), so a
collector parses as many `<Data>` elements as a Windows 10 / Server 2016+ host sends.
Values are plausible, not random noise: a collector's parser and parquet writer see the
same shapes as in production (SIDs, logon ids, hex process ids, IP/port pairs).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

PROVIDER = "Microsoft-Windows-Security-Auditing"
PROVIDER_GUID = "{54849625-5478-4994-A5BA-3E3B0328C30D}"
KEYWORDS_SUCCESS = "0x8020000000000000"
KEYWORDS_FAILURE = "0x8010000000000000"


@dataclass(frozen=True)
class EventTemplate:
    event_id: int
    task: int
    keywords: str
    fields: tuple[str, ...]
    weight: int
    version: int = 0  # the event's `<Version>`: which of its documented schemas `fields` is


# Weights follow a typical domain-controller / member-server Security log.
TEMPLATES: dict[int, EventTemplate] = {
    t.event_id: t
    for t in (
        EventTemplate(
            4624, 12544, KEYWORDS_SUCCESS,
            ("SubjectUserSid", "SubjectUserName", "SubjectDomainName", "SubjectLogonId",
             "TargetUserSid", "TargetUserName", "TargetDomainName", "TargetLogonId",
             "LogonType", "LogonProcessName", "AuthenticationPackageName", "WorkstationName",
             "LogonGuid", "TransmittedServices", "LmPackageName", "KeyLength", "ProcessId",
             "ProcessName", "IpAddress", "IpPort", "ImpersonationLevel",
             # version 2 (Windows 10 / Server 2016) adds these six
             "RestrictedAdminMode", "TargetOutboundUserName", "TargetOutboundDomainName", "VirtualAccount",
             "TargetLinkedLogonId", "ElevatedToken"),
            40, version=2,
        ),
        EventTemplate(
            4625, 12544, KEYWORDS_FAILURE,
            ("SubjectUserSid", "SubjectUserName", "SubjectDomainName", "SubjectLogonId",
             "TargetUserSid", "TargetUserName", "TargetDomainName", "Status", "FailureReason",
             "SubStatus", "LogonType", "LogonProcessName", "AuthenticationPackageName",
             "WorkstationName", "TransmittedServices", "LmPackageName", "KeyLength", "ProcessId",
             "ProcessName", "IpAddress", "IpPort"),
            5,
        ),
        EventTemplate(
            4634, 12545, KEYWORDS_SUCCESS,
            ("TargetUserSid", "TargetUserName", "TargetDomainName", "TargetLogonId", "LogonType"),
            25,
        ),
        EventTemplate(
            4672, 12548, KEYWORDS_SUCCESS,
            ("SubjectUserSid", "SubjectUserName", "SubjectDomainName", "SubjectLogonId", "PrivilegeList"),
            15,
        ),
        EventTemplate(
            4688, 13312, KEYWORDS_SUCCESS,
            ("SubjectUserSid", "SubjectUserName", "SubjectDomainName", "SubjectLogonId",
             "NewProcessId", "NewProcessName", "TokenElevationType", "ProcessId", "CommandLine",
             "TargetUserSid", "TargetUserName", "TargetDomainName", "TargetLogonId",
             "ParentProcessName", "MandatoryLabel"),
            15, version=2,
        ),
    )
}

# An ID the user fixes that we have no template for still gets a logon-shaped body.
GENERIC_FIELDS = TEMPLATES[4624].fields

_USERS = ("alice", "bob", "svc_backup", "svc_sql", "jdoe", "mmiller", "administrator", "WS-0042$")
_DOMAINS = ("CORP", "CORP", "CORP", "NT AUTHORITY")
_PROCESSES = (
    r"C:\Windows\System32\svchost.exe",
    r"C:\Windows\System32\lsass.exe",
    r"C:\Windows\System32\winlogon.exe",
    r"C:\Program Files\Microsoft SQL Server\MSSQL\Binn\sqlservr.exe",
    r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
)
_PRIVILEGES = "SeSecurityPrivilege\n\t\t\tSeBackupPrivilege\n\t\t\tSeRestorePrivilege\n\t\t\tSeDebugPrivilege"


def _sid(rng: random.Random) -> str:
    return f"S-1-5-21-{rng.randint(10**8, 10**9)}-{rng.randint(10**8, 10**9)}-{rng.randint(10**8, 10**9)}-{rng.randint(1000, 9999)}"


def field_value(name: str, rng: random.Random) -> str:
    """A realistic value for one EventData field."""
    if name.startswith("TargetOutbound"):  # only a NewCredentials logon (type 9) names other credentials
        return "-"
    if name == "TargetLinkedLogonId":  # the split token's other half, on UAC logons
        return rng.choice(("0x0", hex(rng.randint(0x10000, 0xFFFFFFF))))
    if name.endswith("Sid"):
        return _sid(rng)
    if name.endswith("UserName"):
        return rng.choice(_USERS)
    if name.endswith("DomainName"):
        return rng.choice(_DOMAINS)
    if name.endswith("LogonId"):
        return hex(rng.randint(0x10000, 0xFFFFFFF))
    if name in ("ProcessId", "NewProcessId"):
        return hex(rng.randint(0x100, 0xFFFF))
    if name in ("ProcessName", "NewProcessName", "ParentProcessName"):
        return rng.choice(_PROCESSES)
    return {
        "LogonType": str(rng.choice((2, 3, 3, 3, 5, 10))),
        "LogonProcessName": rng.choice(("Kerberos", "NtLmSsp ", "Advapi  ", "User32 ")),
        "AuthenticationPackageName": rng.choice(("Kerberos", "NTLM", "Negotiate")),
        "WorkstationName": f"WS-{rng.randint(1, 9999):04d}",
        "LogonGuid": "{%08X-%04X-%04X-%04X-%012X}" % (
            rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(16), rng.getrandbits(16), rng.getrandbits(48)),
        "TransmittedServices": "-",
        "LmPackageName": rng.choice(("-", "NTLM V2")),
        "KeyLength": rng.choice(("0", "128")),
        "IpAddress": f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        "IpPort": str(rng.randint(49152, 65535)),
        "ImpersonationLevel": "%%1833",
        "Status": "0xc000006d",
        "SubStatus": rng.choice(("0xc000006a", "0xc0000064")),
        "FailureReason": "%%2313",
        "PrivilegeList": _PRIVILEGES,
        "TokenElevationType": rng.choice(("%%1936", "%%1937", "%%1938")),
        "CommandLine": rng.choice(("", "C:\\Windows\\system32\\svchost.exe -k netsvcs -p", "powershell.exe -NoProfile")),
        "MandatoryLabel": rng.choice(("S-1-16-8192", "S-1-16-12288", "S-1-16-16384")),
        # %%1842 is Yes, %%1843 No; RestrictedAdminMode is `-` except for RemoteInteractive logons
        "RestrictedAdminMode": "-",
        "VirtualAccount": "%%1843",
        "ElevatedToken": rng.choice(("%%1842", "%%1843")),
    }.get(name, "-")


def template_for(event_id: int) -> EventTemplate:
    known = TEMPLATES.get(event_id)
    if known is not None:
        return known
    return EventTemplate(event_id, 12544, KEYWORDS_SUCCESS, GENERIC_FIELDS, 1, TEMPLATES[4624].version)


def weighted_ids(rng: random.Random, count: int) -> list[int]:
    ids = list(TEMPLATES)
    return rng.choices(ids, weights=[TEMPLATES[i].weight for i in ids], k=count)
