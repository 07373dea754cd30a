"""report.html pages: self-contained (no network), escaped, sortable; rendered by a real browser
when one is installed."""
import re
import shutil
import subprocess

import pytest
from PIL import Image

from ucat import html as H


def _page(tmp_path):
    png = tmp_path / "fig.png"
    Image.new("RGB", (40, 20), (200, 30, 30)).save(png)
    t = H.Table("CLIP under pgd", ["Dataset", "Clean acc", "Checks"],
                [["<script>alert(1)</script>", "91.25", "ok"], ["b", "8.50", "WARN"], ["Average", "49.88", "WARN"]],
                sort_keys=[[None, 0.9125, None], [None, 0.085, None], [None, 0.4988, None]], average_rows=[2],
                note="eps in 1/255")
    return H.Page("ucat eval", [t], [png, tmp_path / "missing.png"], {"protocol": "quick", "torch": "2.14"})


def test_page_is_self_contained_and_escaped(tmp_path):
    text = H.render(_page(tmp_path))
    assert "data:image/png;base64," in text and "missing.png" not in text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text) and "<link" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "<script>alert(1)" not in text
    assert 'data-v="0.085"' in text and '<tr class="avg">' in text and 'class="warn"' in text
    assert "<b>protocol</b>: <code>quick</code>" in text
    out = H.write(_page(tmp_path), tmp_path / "report.html")
    assert out.read_text() == text


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(_chromium() is None, reason="no Chromium installed (apt-get install chromium) to render the page")
def test_page_renders_in_a_headless_browser(tmp_path):
    page = H.write(_page(tmp_path), tmp_path / "report.html")
    shot = tmp_path / "shot.png"
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
           "--window-size=900,600", page.as_uri()]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    img = Image.open(shot).convert("RGB")
    assert img.size == (900, 600)
    colours = img.getcolors(maxcolors=1 << 20)
    assert len(colours) > 10                                  # text and the figure were drawn, not a blank page
    dom = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    assert "CLIP under pgd" in dom and "sortable" in dom
