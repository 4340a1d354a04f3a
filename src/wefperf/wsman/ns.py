"""Namespaces, actions and fixed URIs of WEF's WS-Management push mode (docs/wsman.md)."""

from __future__ import annotations

SOAP = "http://www.w3.org/2003/05/soap-envelope"
ADDRESSING = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
ENUMERATION = "http://schemas.xmlsoap.org/ws/2004/09/enumeration"
EVENTING = "http://schemas.xmlsoap.org/ws/2004/08/eventing"
WSMAN = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
MS_WSMAN = "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd"
MACHINE_ID = "http://schemas.microsoft.com/wbem/wsman/1/machineid"
EVENT = "http://schemas.microsoft.com/win/2004/08/events/event"
SUBSCRIPTION = "http://schemas.microsoft.com/wbem/wsman/1/subscription"
POLICY = "http://schemas.xmlsoap.org/ws/2002/12/policy"
AUTHENTICATION = "http://schemas.microsoft.com/wbem/wsman/1/authentication"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
EVENT_QUERY = "http://schemas.microsoft.com/win/2004/08/events/eventquery"

# Prefix -> namespace, as the envelopes declare them.
PREFIXES = {
    "s": SOAP, "a": ADDRESSING, "n": ENUMERATION, "e": EVENTING,
    "w": WSMAN, "p": MS_WSMAN, "m": MACHINE_ID,
}

ACTION_ENUMERATE = ENUMERATION + "/Enumerate"
ACTION_ENUMERATE_RESPONSE = ENUMERATION + "/EnumerateResponse"
ACTION_END = "http://schemas.microsoft.com/wbem/wsman/1/wsman/End"
ACTION_SUBSCRIBE = EVENTING + "/Subscribe"
ACTION_EVENTS = "http://schemas.dmtf.org/wbem/wsman/1/wsman/Events"
ACTION_EVENT = "http://schemas.dmtf.org/wbem/wsman/1/wsman/Event"
ACTION_HEARTBEAT = "http://schemas.dmtf.org/wbem/wsman/1/wsman/Heartbeat"
ACTION_ACK = "http://schemas.dmtf.org/wbem/wsman/1/wsman/Ack"
ACTION_FAULT = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"
ANONYMOUS = ADDRESSING + "/role/anonymous"

RESOURCE_SUBSCRIPTION = "http://schemas.microsoft.com/wbem/wsman/1/SubscriptionManager/Subscription"
RESOURCE_FULL_DUPLEX = "http://schemas.microsoft.com/wbem/wsman/1/wsman/FullDuplex"
RESOURCE_EVENTLOG = "http://schemas.microsoft.com/wbem/wsman/1/windows/EventLog"
# The delivery mode Microsoft's collector and OpenWEC ask for: several events per message, each message Acked.
DELIVERY_EVENTS = ACTION_EVENTS
PROFILE_HTTPS_MUTUAL = "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/https/mutual"
PROFILE_KERBEROS = "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/http/spnego-kerberos"
BOOKMARK_EARLIEST = "http://schemas.dmtf.org/wbem/wsman/1/wsman/bookmark/earliest"

SUBSCRIPTION_MANAGER_PATH = "/wsman/SubscriptionManager/WEC"
SUBSCRIPTIONS_PATH = "/wsman/subscriptions/"
CONTENT_TYPE = "application/soap+xml;charset=UTF-16"
BOM = b"\xff\xfe"  # UTF-16LE
DEFAULT_MAX_ENVELOPE = 512_000
