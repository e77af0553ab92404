"""MkDocs hook: the generated parts of pages, made at build time so that they cannot drift: the
reference pages from the code, and the home page from the README (its links moved into the site)."""

from pathlib import Path

from crossemo.reference import cli_markdown, params_markdown

README = Path(__file__).parents[1] / "README.md"


def home_page() -> str:
    """README.md with its links pointing inside the site."""
    text = README.read_text().replace("](reports/real-corpora/", "](research/real-corpora/").replace("](docs/", "](")
    for name in ("CONTRIBUTING.md", "CHANGELOG.md"):  # outside the site: named, not linked
        text = text.replace(f"[{name}]({name})", f"{name} (in the repository)")
    return text


MARKERS = {
    "<!-- reference:params -->": params_markdown,
    "<!-- reference:cli -->": cli_markdown,
    "<!-- readme -->": home_page,
}


def on_page_markdown(markdown, page, config, files, **kwargs):
    for marker, make in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown
