"""Write demo/helpcentre/glow-quick-start.pdf, the demo help centre's one PDF.

`python demo/build_helpcentre_pdf.py` regenerates it from GUIDE below. The PDF is written by
hand (standard Helvetica fonts, one text stream per page) so that no PDF library has to be
installed for a file that changes once in a while; the generated file is committed.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

OUT = Path(__file__).resolve().parent / "helpcentre" / "glow-quick-start.pdf"

# (style, text) per paragraph; "page" starts a new page. ASCII only: the fonts use WinAnsi.
GUIDE: list[tuple[str, str]] = [
    ("title", "Acme Glow smart bulb: quick start and safety guide"),
    (
        "body",
        "Thank you for choosing the Acme Glow, a dimmable colour LED bulb with an E27 fitting. "
        "This guide explains how to install the bulb, connect it to the Acme Home app and use it safely.",
    ),
    ("heading", "Installing the Acme Glow"),
    (
        "body",
        "Switch off the lamp and let the old bulb cool down before you remove it. Screw the Acme Glow "
        "into any E27 lamp socket and switch the lamp on. The bulb blinks blue three times: it is ready to "
        "be set up. The Acme Glow works with ordinary wall switches, but not with dimmer switches: a wall "
        "dimmer makes the bulb flicker and may damage it.",
    ),
    ("heading", "Connecting the bulb to the Acme Home app"),
    (
        "body",
        "Open the Acme Home app, tap Add device and choose Acme Glow. Keep your phone within five metres "
        "of the bulb. The bulb joins your Acme HomeHub if you have one, or your 2.4 GHz Wi-Fi network "
        "otherwise. Setup takes about one minute. When it is done, the bulb glows warm white.",
    ),
    ("heading", "Resetting the Acme Glow"),
    (
        "body",
        "To reset the bulb, switch the lamp off and on five times in a row, leaving it on for about one "
        "second each time. The bulb blinks red and then blue when the reset has worked. Add it to the app "
        "again afterwards.",
    ),
    ("page", ""),
    ("heading", "Technical specifications"),
    (
        "body",
        "Power: 9 W, equivalent to a 60 W incandescent bulb. Brightness: 806 lumens. Colour temperature: "
        "2200 K to 6500 K, and 16 million colours. Lifetime: 25,000 hours. Operating temperature: -10 to 40 "
        "degrees Celsius. For indoor use only.",
    ),
    ("heading", "Safety instructions"),
    (
        "body",
        "Do not use the Acme Glow in enclosed fixtures without ventilation, in bathrooms where it can be "
        "splashed with water, or outdoors. Do not open the bulb or try to repair it. Keep it away from "
        "children while it is hot. Switch off the power before you change the bulb.",
    ),
    ("heading", "Disposal and recycling"),
    (
        "body",
        "The Acme Glow contains electronics and must not be thrown away with household waste. Take it to "
        "a collection point for electronic waste, or send it back to us free of charge with a return label "
        "from your account: we recycle it for you.",
    ),
    ("heading", "Warranty"),
    (
        "body",
        "The Acme Glow has a two-year warranty, like every Acme product. A bulb that stops working or "
        "flickers without a dimmer switch is replaced free of charge. Start a claim under Orders in your "
        "account and choose Report a problem.",
    ),
]

STYLES = {"title": ("F2", 18, 26, 52), "heading": ("F2", 13, 18, 70), "body": ("F1", 11, 15, 88)}
LEFT, TOP, BOTTOM = 56, 790, 60


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _page_streams() -> list[str]:
    pages: list[list[str]] = [[]]
    y = TOP
    for style, text in GUIDE:
        if style == "page":
            pages.append([])
            y = TOP
            continue
        font, size, leading, width = STYLES[style]
        y -= 8 if style == "heading" else 0
        for line in textwrap.wrap(text, width):
            pages[-1].append(f"BT /{font} {size} Tf {LEFT} {y} Td ({_escape(line)}) Tj ET")
            y -= leading
        y -= 6
        if y < BOTTOM:
            raise ValueError("a page overflows; add a ('page', '') break earlier")
    return ["\n".join(ops) for ops in pages]


def build() -> bytes:
    streams = _page_streams()
    n = len(streams)
    # Objects: 1 catalog, 2 pages, 3-4 fonts, then a page and its content stream per page.
    page_ids = [5 + 2 * i for i in range(n)]
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{' '.join(f'{p} 0 R' for p in page_ids)}] /Count {n} >>",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
    ]
    for page_id, stream in zip(page_ids, streams, strict=True):
        objects.append(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
            f"/Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents {page_id + 1} 0 R >>"
        )
        data = stream.encode("latin-1")
        objects.append(f"<< /Length {len(data)} >>\nstream\n{stream}\nendstream")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


if __name__ == "__main__":
    OUT.write_bytes(build())
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
