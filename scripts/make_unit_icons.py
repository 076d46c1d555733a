"""Draw the unit app's home-screen icons (console_ui/static/unit/icons/*.png).

Run once after changing the design: `.venv/bin/python scripts/make_unit_icons.py`. The
PNGs are committed; Pillow is needed only here, not by the server.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

OUT = Path(__file__).resolve().parent.parent / "console_ui" / "static" / "unit" / "icons"
BG = (15, 20, 25)  # the console's --bg, so the splash screen and the icon match
BLUE = (29, 95, 160)
LAMP = (92, 179, 255)
TEXT = (232, 237, 242)
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


def draw(size: int) -> Image.Image:
    img = Image.new("RGB", (size, size), BG)
    d = ImageDraw.Draw(img)
    s = size / 512
    # Everything inside the central 80 %: a maskable icon's safe zone.
    d.rounded_rectangle(
        (96 * s, 150 * s, 416 * s, 392 * s),
        radius=36 * s,
        fill=BLUE,
        outline=LAMP,
        width=round(8 * s),
    )
    # The blue lamp on the roof.
    d.rounded_rectangle((206 * s, 104 * s, 306 * s, 150 * s), radius=14 * s, fill=LAMP)
    font = ImageFont.truetype(FONT, round(130 * s))
    d.text((256 * s, 272 * s), "999", font=font, fill=TEXT, anchor="mm")
    return img


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for size in (192, 512):
        draw(size).save(OUT / f"icon-{size}.png", optimize=True)


if __name__ == "__main__":
    main()
