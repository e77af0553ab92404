"""MkDocs hook: the reference pages' generated parts, made from the code at build time."""

from crossemo.reference import cli_markdown, params_markdown

MARKERS = {"<!-- reference:params -->": params_markdown, "<!-- reference:cli -->": cli_markdown}


def on_page_markdown(markdown, page, config, files, **kwargs):
    for marker, make in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown
