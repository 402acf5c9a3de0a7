"""Checks of written figure files by what they hold, read without matplotlib: the pages of a
PDF (from its page objects) and the pixels of a PNG (with Pillow).

A header or a size in bytes says only that something was written; these say that the PDF is
one page of the figure's size, that the PNG has the figure's size in pixels at the dpi it was
saved with, and that it is not blank.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

#: Page objects of a PDF ("/Type /Pages" is the page tree, not a page) and their MediaBox.
PAGE = re.compile(rb"/Type\s*/Page(?![A-Za-z])[^>]*?/MediaBox\s*\[\s*([^\]]*)\]")
#: save_figure's default resolution (milad.plots.style).
DPI = 150


def pdf_page_sizes(path: Path) -> list[tuple[float, float]]:
    """Width and height (points) of every page of the PDF at ``path``."""
    data = Path(path).read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF"), f"{path}: not a whole PDF"
    sizes = []
    for box in PAGE.findall(data):
        x0, y0, x1, y1 = (float(v) for v in box.split())
        sizes.append((x1 - x0, y1 - y0))
    assert len(sizes) == len(re.findall(rb"/Type\s*/Page(?![A-Za-z])", data)), \
        f"{path}: a page without a MediaBox"
    return sizes


def png_pixels(path: Path) -> np.ndarray:
    """The RGB pixels (rows x columns x 3) of the PNG at ``path``."""
    with Image.open(path) as image:
        assert image.format == "PNG", f"{path}: {image.format}, not PNG"
        return np.asarray(image.convert("RGB"))


def ink(pixels: np.ndarray) -> float:
    """Fraction of the pixels that differ from the most common colour (the background)."""
    packed = pixels.astype(np.uint32) @ np.array([1 << 16, 1 << 8, 1], dtype=np.uint32)
    _, counts = np.unique(packed, return_counts=True)
    return 1.0 - counts.max() / packed.size


def assert_figure_files(pdf: Path | None = None, png: Path | None = None, *, figure=None,
                        dpi: int = DPI, min_ink: float = 0.01) -> None:
    """The PDF is one page and the PNG is not blank (at least ``min_ink`` of its pixels off the
    background); both have ``figure``'s size (inches) when it is given, and each other's."""
    inches = None if figure is None else tuple(float(v) for v in figure.get_size_inches())
    if pdf is not None:
        pages = pdf_page_sizes(pdf)
        assert len(pages) == 1, f"{pdf}: {len(pages)} pages, expected one"
        page = pages[0]
        if inches is not None:
            np.testing.assert_allclose(page, np.multiply(inches, 72), atol=0.01, err_msg=str(pdf))
        inches = (page[0] / 72, page[1] / 72)
    if png is not None:
        pixels = png_pixels(png)
        height, width = pixels.shape[:2]
        if inches is not None:
            expected = np.multiply(inches, dpi)
            assert np.all(np.abs(np.subtract((width, height), expected)) <= 1), (
                f"{png}: {width} x {height} pixels, the figure is {expected[0]:g} x "
                f"{expected[1]:g} at {dpi} dpi")
        assert ink(pixels) >= min_ink, f"{png}: blank ({ink(pixels):.2%} of pixels drawn)"
