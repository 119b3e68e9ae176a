"""Update messages are Markdown written by operators and shown to the public: on the status page, in feeds and
in mails. One rendering for all of them, so a message looks the same everywhere and is safe everywhere:
markdown-it-py without raw HTML and without images (an image would make every reader's browser or mail client
fetch from a host the message's author chose), then nh3's sanitiser (only http, https and mailto links
survive, each marked `rel="nofollow noopener noreferrer"`)."""

from __future__ import annotations

from functools import lru_cache

import nh3
from markdown_it import MarkdownIt

_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(
    ["table", "strikethrough"]
).disable("image")
_TAGS = nh3.ALLOWED_TAGS - {"img"}
_SCHEMES = {"http", "https", "mailto"}


@lru_cache(maxsize=4096)
def render_markdown(message: str) -> str:
    """A message as safe HTML (cached: a rebuild renders the same messages many times)."""
    return nh3.clean(
        _MARKDOWN.render(message), tags=_TAGS, url_schemes=_SCHEMES, link_rel="nofollow noopener noreferrer"
    )
