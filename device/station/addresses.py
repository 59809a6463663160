"""Where a phone opens the trainer page: the station's address on the gym's network and its
`<hostname>.local` name (mDNS, which Raspberry Pi OS answers through avahi), not only 127.0.0.1,
and a QR code of it in the terminal so a trainer points a phone at the screen instead of typing."""
from __future__ import annotations

import io
import socket
from typing import Optional

ANY_ADDRESS = ("0.0.0.0", "::", "")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
# Connecting a UDP socket sends nothing: it only asks the kernel which local address its routing
# table would send from. 192.0.2.1 is TEST-NET-1 (RFC 5737), never a real host.
ROUTE_PROBE = ("192.0.2.1", 9)


def lan_ipv4() -> Optional[str]:
    """This machine's address on its default route, or None without a network (or only loopback)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(ROUTE_PROBE)
            address = str(probe.getsockname()[0])
    except OSError:
        return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def local_url(host: str, port: int) -> str:
    """The page's URL on this machine: a page listening on every address is opened at 127.0.0.1."""
    return _url("127.0.0.1" if host in ANY_ADDRESS else host, port)


def phone_urls(host: str, port: int, lan: Optional[str] = None, hostname: Optional[str] = None) -> list[str]:
    """The URLs a phone on the gym's network opens the page at, best first: the address the page
    listens on when it is one, else this machine's LAN address and `<hostname>.local`. Empty when the
    page listens on loopback only (web.host = 127.0.0.1): no phone can reach it."""
    if host in LOOPBACK:
        return []
    if host not in ANY_ADDRESS:
        return [_url(host, port)]
    urls = [_url(lan, port)] if lan else []
    name = (hostname or "").split(".")[0]
    if name and name != "localhost":
        urls.append(_url(f"{name}.local", port))
    return urls


def qr_for_terminal(url: str) -> str:
    """The URL as a QR code drawn with half-block characters (two modules a line), dark on light with
    the quiet zone a phone's camera needs. segno: pure Python, no dependencies."""
    import segno

    out = io.StringIO()
    segno.make(url, micro=False).terminal(out=out, compact=True)
    return out.getvalue()


def page_lines(host: str, port: int, local_url: str, tty: bool) -> list[str]:
    """What `station run` and `station serve` print about their page: the URL on this machine (first,
    as scripts read it), where a phone opens it, and on a terminal the QR code of the first of those."""
    lines = [f"trainer page: {local_url}"]
    urls = phone_urls(host, port, lan_ipv4(), socket.gethostname())
    if urls:
        lines.append(f"  on a phone on this network: {' or '.join(urls)}")
        if tty:
            lines.append(qr_for_terminal(urls[0]).rstrip("\n"))
    elif host in LOOPBACK:
        lines.append("  this machine only (web.host = 127.0.0.1): set web.host = \"0.0.0.0\" to open it from a phone")
    else:
        lines.append("  no network address found: connect the station to the gym's network to open it from a phone")
    return lines
