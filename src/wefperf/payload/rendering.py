"""RenderingInfo: what Windows appends to each event when a subscription's ContentFormat is RenderedText.

The block follows EventData, as in the captures of OpenWEC's doc/protocol.md: a `Culture` attribute,
then Message, Level, Task, Opcode, Channel, Provider and Keywords, in that order (the order Windows
writes; the event schema, OpenWEC's doc/event.xsd, lists Opcode before Task and calls the provider
`Publisher`, but Windows writes what the captures show). The Message is the event's en-US message with
this event's own values in it, written after Microsoft's description of each event (Microsoft Learn,
"Advanced security audit policy settings"), its lines ending in CR LF as Windows' message strings do:
a 4624's is about 2.3 KB, more than the event without it. Insertion strings (`%%1842` and the like)
are shown as Windows renders them; SIDs stay SIDs (Windows may show the account name instead).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from xml.sax.saxutils import escape, unescape

from .templates import KEYWORDS_FAILURE, template_for

CULTURE = "en-US"
RENDERED_TEXT = "RenderedText"
PROVIDER_TEXT = "Microsoft Windows security auditing."
_TASKS = {12544: "Logon", 12545: "Logoff", 12548: "Special Logon", 13312: "Process Creation"}
_INSERTS = {
    "%%1833": "Impersonation", "%%1842": "Yes", "%%1843": "No",
    "%%1936": "TokenElevationTypeDefault (1)", "%%1937": "TokenElevationTypeFull (2)",
    "%%1938": "TokenElevationTypeLimited (3)", "%%2313": "Unknown user name or bad password.",
    "S-1-16-8192": "Mandatory Label\\Medium Mandatory Level", "S-1-16-12288": "Mandatory Label\\High Mandatory Level",
    "S-1-16-16384": "Mandatory Label\\System Mandatory Level",
}
_DATA = re.compile(r'<Data Name="([^"]+)">([^<]*)</Data>')

_SUBJECT = """Subject:
\tSecurity ID:\t\t{SubjectUserSid}
\tAccount Name:\t\t{SubjectUserName}
\tAccount Domain:\t\t{SubjectDomainName}
\tLogon ID:\t\t{SubjectLogonId}"""
_NETWORK = """Network Information:
\tWorkstation Name:\t{WorkstationName}
\tSource Network Address:\t{IpAddress}
\tSource Port:\t\t{IpPort}

Detailed Authentication Information:
\tLogon Process:\t\t{LogonProcessName}
\tAuthentication Package:\t{AuthenticationPackageName}
\tTransited Services:\t{TransmittedServices}
\tPackage Name (NTLM only):\t{LmPackageName}
\tKey Length:\t\t{KeyLength}"""
_AUTH_FIELDS = """\t- Transited services indicate which intermediate services have participated in this logon request.
\t- Package name indicates which sub-protocol was used among the NTLM protocols.
\t- Key length indicates the length of the generated session key. This will be 0 if no session key was requested."""

_LOGON = f"""An account was successfully logged on.

{_SUBJECT}

Logon Information:
\tLogon Type:\t\t{{LogonType}}
\tRestricted Admin Mode:\t{{RestrictedAdminMode}}
\tVirtual Account:\t\t{{VirtualAccount}}
\tElevated Token:\t\t{{ElevatedToken}}

Impersonation Level:\t\t{{ImpersonationLevel}}

New Logon:
\tSecurity ID:\t\t{{TargetUserSid}}
\tAccount Name:\t\t{{TargetUserName}}
\tAccount Domain:\t\t{{TargetDomainName}}
\tLogon ID:\t\t{{TargetLogonId}}
\tLinked Logon ID:\t\t{{TargetLinkedLogonId}}
\tNetwork Account Name:\t{{TargetOutboundUserName}}
\tNetwork Account Domain:\t{{TargetOutboundDomainName}}
\tLogon GUID:\t\t{{LogonGuid}}

Process Information:
\tProcess ID:\t\t{{ProcessId}}
\tProcess Name:\t\t{{ProcessName}}

{_NETWORK}

This event is generated when a logon session is created. It is generated on the computer that was accessed.

The subject fields indicate the account on the local system which requested the logon. This is most \
commonly a service such as the Server service, or a local process such as Winlogon.exe or Services.exe.

The logon type field indicates the kind of logon that occurred. The most common types are 2 (interactive) \
and 3 (network).

The New Logon fields indicate the account for whom the new logon was created, i.e. the account that was logged on.

The network fields indicate where a remote logon request originated. Workstation name is not always \
available and may be left blank in some cases.

The impersonation level field indicates the extent to which a process in the logon session can impersonate.

The authentication information fields provide detailed information about this specific logon request.
\t- Logon GUID is a unique identifier that can be used to correlate this event with a KDC event.
{_AUTH_FIELDS}"""

_FAILED = f"""An account failed to log on.

{_SUBJECT}

Logon Type:\t\t\t{{LogonType}}

Account For Which Logon Failed:
\tSecurity ID:\t\t{{TargetUserSid}}
\tAccount Name:\t\t{{TargetUserName}}
\tAccount Domain:\t\t{{TargetDomainName}}

Failure Information:
\tFailure Reason:\t\t{{FailureReason}}
\tStatus:\t\t\t{{Status}}
\tSub Status:\t\t{{SubStatus}}

Process Information:
\tCaller Process ID:\t{{ProcessId}}
\tCaller Process Name:\t{{ProcessName}}

{_NETWORK}

This event is generated when a logon request fails. It is generated on the computer where access was attempted.

The Subject fields indicate the account on the local system which requested the logon. This is most \
commonly a service such as the Server service, or a local process such as Winlogon.exe or Services.exe.

The Logon Type field indicates the kind of logon that was requested. The most common types are 2 \
(interactive) and 3 (network).

The Process Information fields indicate which account and process on the system requested the logon.

The Network Information fields indicate where a remote logon request originated. Workstation name is not \
always available and may be left blank in some cases.

The authentication information fields provide detailed information about this specific logon request.
{_AUTH_FIELDS}"""

_LOGOFF = """An account was logged off.

Subject:
\tSecurity ID:\t\t{TargetUserSid}
\tAccount Name:\t\t{TargetUserName}
\tAccount Domain:\t\t{TargetDomainName}
\tLogon ID:\t\t{TargetLogonId}

Logon Type:\t\t\t{LogonType}

This event is generated when a logon session is destroyed. It may be positively correlated with a logon \
event using the Logon ID value. Logon IDs are only unique between reboots on the same computer."""

_SPECIAL = f"""Special privileges assigned to new logon.

{_SUBJECT}

Privileges:\t\t{{PrivilegeList}}"""

_PROCESS = f"""A new process has been created.

Creator {_SUBJECT}

Target Subject:
\tSecurity ID:\t\t{{TargetUserSid}}
\tAccount Name:\t\t{{TargetUserName}}
\tAccount Domain:\t\t{{TargetDomainName}}
\tLogon ID:\t\t{{TargetLogonId}}

Process Information:
\tNew Process ID:\t\t{{NewProcessId}}
\tNew Process Name:\t{{NewProcessName}}
\tToken Elevation Type:\t{{TokenElevationType}}
\tMandatory Label:\t\t{{MandatoryLabel}}
\tCreator Process ID:\t{{ProcessId}}
\tCreator Process Name:\t{{ParentProcessName}}
\tProcess Command Line:\t{{CommandLine}}

Token Elevation Type indicates the type of token that was assigned to the new process in accordance with \
User Account Control policy.

Type 1 is a full token with no privileges removed or groups disabled.  A full token is only used if User \
Account Control is disabled or if the user is the built-in Administrator account or a service account.

Type 2 is an elevated token with no privileges removed or groups disabled.  An elevated token is used when \
User Account Control is enabled and the user chooses to start the program using Run as administrator.  An \
elevated token is also used when an application is configured to always require administrative privilege \
or to always require maximum privilege, and the user is a member of the Administrators group.

Type 3 is a limited token with administrative privileges removed and administrative groups disabled.  The \
limited token is used when User Account Control is enabled, the application does not require administrative \
privilege, and the user does not choose to start the program using Run as administrator."""

# An ID without a template of its own carries a logon-shaped body (templates.GENERIC_FIELDS): its message too.
_MESSAGES = {4624: _LOGON, 4625: _FAILED, 4634: _LOGOFF, 4672: _SPECIAL, 4688: _PROCESS}


class _Values(dict[str, str]):
    """An event's EventData for `str.format_map`, insertion strings rendered; a field it lacks shows `-`."""

    def __missing__(self, key: str) -> str:
        return "-"


def event_data(xml: str) -> dict[str, str]:
    """The `<Data Name="...">value</Data>` elements of a piece of event text, values unescaped."""
    return {name: unescape(value) for name, value in _DATA.findall(xml)}


def message(event_id: int, data: Mapping[str, str]) -> str:
    """The en-US message of the event, with its values, lines ending in CR LF."""
    values = _Values({k: _INSERTS.get(v, v) for k, v in data.items()})
    return _MESSAGES.get(event_id, _LOGON).format_map(values).replace("\n", "\r\n")


def rendering_info(event_id: int, data: Mapping[str, str]) -> str:
    """The RenderingInfo element Windows appends after EventData, as XML text."""
    template = template_for(event_id)
    keyword = "Audit Failure" if template.keywords == KEYWORDS_FAILURE else "Audit Success"
    return (
        f'<RenderingInfo Culture="{CULTURE}"><Message>{escape(message(event_id, data))}</Message>'
        f"<Level>Information</Level><Task>{_TASKS.get(template.task, '')}</Task><Opcode>Info</Opcode>"
        f"<Channel>Security</Channel><Provider>{PROVIDER_TEXT}</Provider>"
        f"<Keywords><Keyword>{keyword}</Keyword></Keywords></RenderingInfo>"
    )
