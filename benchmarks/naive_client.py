"""The old suite's client, kept as a yardstick: a synchronous loop that formats every
event's XML for each batch and posts it with `requests`, one request at a time.

It keeps one `requests.Session` (keep-alive), which is kinder to it than a fresh
connection per batch. Prints one JSON line: batches, events, bytes, seconds.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from datetime import datetime, timezone

import requests

EVENT_TEMPLATE = (
    '<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event"><System>'
    '<Provider Name="Microsoft-Windows-Security-Auditing" Guid="{{54849625-5478-4994-A5BA-3E3B0328C30D}}"/>'
    "<EventID>4624</EventID><Version>2</Version><Level>0</Level><Task>12544</Task><Opcode>0</Opcode>"
    "<Keywords>0x8020000000000000</Keywords><TimeCreated SystemTime=\"{time}\"/>"
    "<EventRecordID>{record}</EventRecordID><Correlation/>"
    '<Execution ProcessID="{pid}" ThreadID="{tid}"/><Channel>Security</Channel>'
    "<Computer>{computer}</Computer><Security/></System><EventData>"
    '<Data Name="SubjectUserSid">S-1-5-18</Data><Data Name="SubjectUserName">{computer_short}$</Data>'
    '<Data Name="SubjectDomainName">CORP</Data><Data Name="SubjectLogonId">0x3e7</Data>'
    '<Data Name="TargetUserSid">S-1-5-21-{sid}</Data><Data Name="TargetUserName">{user}</Data>'
    '<Data Name="TargetDomainName">CORP</Data><Data Name="TargetLogonId">0x{logon:x}</Data>'
    '<Data Name="LogonType">{logon_type}</Data><Data Name="LogonProcessName">User32</Data>'
    '<Data Name="AuthenticationPackageName">Negotiate</Data><Data Name="WorkstationName">{computer_short}</Data>'
    '<Data Name="LogonGuid">{{00000000-0000-0000-0000-000000000000}}</Data>'
    '<Data Name="TransmittedServices">-</Data><Data Name="LmPackageName">-</Data>'
    '<Data Name="KeyLength">0</Data><Data Name="ProcessId">0x{pid:x}</Data>'
    '<Data Name="ProcessName">C:\\Windows\\System32\\svchost.exe</Data>'
    '<Data Name="IpAddress">10.{a}.{b}.{c}</Data><Data Name="IpPort">{port}</Data>'
    '<Data Name="ImpersonationLevel">%%1833</Data><Data Name="RestrictedAdminMode">-</Data>'
    '<Data Name="TargetOutboundUserName">-</Data><Data Name="TargetOutboundDomainName">-</Data>'
    '<Data Name="VirtualAccount">%%1843</Data><Data Name="TargetLinkedLogonId">0x0</Data>'
    '<Data Name="ElevatedToken">%%1842</Data><Data Name="Marker">{run}:{batch}:{index}</Data>'
    "</EventData></Event>\n"
)


def build_batch(run: str, batch: int, size: int) -> str:
    """Every event formatted anew, as the old suite did for each request."""
    events = []
    for index in range(size):
        host = random.randint(1, 9999)
        events.append(
            EVENT_TEMPLATE.format(
                time=datetime.now(timezone.utc).isoformat(), record=batch * size + index,
                pid=random.randint(400, 9000), tid=random.randint(1000, 9000),
                computer=f"WS-{host:04d}.corp.example.com", computer_short=f"WS-{host:04d}",
                sid="-".join(str(random.randint(10**8, 10**9)) for _ in range(4)),
                user=f"user{random.randint(1, 50000)}", logon=random.randint(1, 2**32),
                logon_type=random.choice((2, 3, 10)), a=random.randint(0, 255), b=random.randint(0, 255),
                c=random.randint(1, 254), port=random.randint(1024, 65535), run=run, batch=batch, index=index,
            )
        )
    return '<?xml version="1.0" encoding="utf-8"?>\n<Envelope><Body><Events>\n' + "".join(events) + "</Events></Body></Envelope>\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--url", required=True)
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--duration-secs", type=float, default=10.0)
    args = p.parse_args()
    session = requests.Session()
    headers = {"Content-Type": "application/soap+xml;charset=UTF-8"}
    batches = events = sent_bytes = failed = 0
    start = time.perf_counter()
    while time.perf_counter() - start < args.duration_secs:
        body = build_batch("naive", batches, args.batch_size).encode()
        try:
            resp = session.post(args.url, data=body, headers=headers, timeout=30)
            if resp.status_code != 200:
                failed += 1
        except requests.RequestException:
            failed += 1
        batches += 1
        events += args.batch_size
        sent_bytes += len(body)
    seconds = time.perf_counter() - start
    print(json.dumps({"batches": batches, "events": events, "bytes": sent_bytes, "failed": failed, "seconds": seconds}))


if __name__ == "__main__":
    main()
