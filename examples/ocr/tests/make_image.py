"""Draw the OCR test image: two lines of large black text on white (tests/hello.png).

Run: python examples/ocr/tests/make_image.py. The tests use the committed PNG, not this script.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

LINES = ["HELLO WORLD", "Serving 2025"]
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")


def main() -> None:
    # DejaVu where Debian has it; else Pillow's built-in font (scalable since Pillow 10.1).
    font = ImageFont.truetype(str(FONT), 48) if FONT.exists() else ImageFont.load_default(size=48)
    image = Image.new("L", (480, 180), color=255)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(LINES):
        draw.text((30, 25 + 75 * i), line, fill=0, font=font)
    out = Path(__file__).with_name("hello.png")
    image.save(out, optimize=True)
    print(f"{out}: {out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
