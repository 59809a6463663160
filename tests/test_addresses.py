"""Where a phone opens the trainer page (device/station/addresses.py): the LAN address and
`<hostname>.local` when the page listens on every interface, nothing a phone cannot reach, and a
terminal QR code that a real decoder (OpenCV's) reads back as the URL."""
from __future__ import annotations

import cv2
import numpy as np

from device.station.addresses import lan_ipv4, page_lines, phone_urls, qr_for_terminal


def test_a_page_on_every_interface_is_opened_at_the_lan_address_and_the_mdns_name():
    assert phone_urls("0.0.0.0", 8080, "192.168.1.20", "gym-pi") == ["http://192.168.1.20:8080/", "http://gym-pi.local:8080/"]
    assert phone_urls("0.0.0.0", 8080, None, "gym-pi.lan") == ["http://gym-pi.local:8080/"]  # no route: the name only
    assert phone_urls("10.0.0.5", 8080, "192.168.1.20", "gym-pi") == ["http://10.0.0.5:8080/"]  # the address it listens on


def test_a_page_on_loopback_offers_no_phone_address_and_says_how_to_open_it():
    assert phone_urls("127.0.0.1", 8080, "192.168.1.20", "gym-pi") == []
    lines = page_lines("127.0.0.1", 8080, "http://127.0.0.1:8080/", tty=True)
    assert lines[0] == "trainer page: http://127.0.0.1:8080/" and "web.host" in lines[1] and len(lines) == 2


def test_the_lan_address_is_this_machines_own_and_never_loopback():
    import socket

    address = lan_ipv4()
    if address is not None:
        assert not address.startswith("127.")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((address, 0))  # an address this machine owns binds; any other raises


def _modules(drawn: str) -> np.ndarray:
    """The terminal drawing back to an image: each character is two modules (upper, lower half);
    segno draws light modules as blocks and dark ones as spaces, on a light quiet zone."""
    rows = [line for line in drawn.splitlines() if line]
    upper = {"█": 1, "▀": 1, "▄": 0, " ": 0}
    lower = {"█": 1, "▀": 0, "▄": 1, " ": 0}
    width = max(len(r) for r in rows)
    light = np.zeros((2 * len(rows), width), np.uint8)
    for y, row in enumerate(rows):
        for x, ch in enumerate(row):
            light[2 * y, x], light[2 * y + 1, x] = upper.get(ch, 0), lower.get(ch, 0)
    return light


def test_the_terminal_qr_code_decodes_to_the_phone_url():
    url = "http://192.168.1.20:8080/"
    image = cv2.resize(_modules(qr_for_terminal(url)) * 255, None, fx=8, fy=8, interpolation=cv2.INTER_NEAREST)
    image = cv2.copyMakeBorder(image, 32, 32, 32, 32, cv2.BORDER_CONSTANT, value=255)
    decoded, _, _ = cv2.QRCodeDetector().detectAndDecode(image)
    assert decoded == url
    lines = page_lines("0.0.0.0", 8080, "http://127.0.0.1:8080/", tty=False)
    assert lines[0] == "trainer page: http://127.0.0.1:8080/"  # first, as scripts read it
    assert all("█" not in line for line in lines)  # no QR into a log file or the journal
