"""``highlight``: render a search snippet with its matches in ``<mark>``, everything else escaped."""

import re

from django import template
from django.utils.html import escape
from django.utils.safestring import mark_safe

from articles.search import MARK_END, MARK_START

register = template.Library()

_MARKED = re.compile(f"{MARK_START}([^{MARK_START}{MARK_END}]*){MARK_END}")
_STRAY = re.compile(f"[{MARK_START}{MARK_END}]")


@register.filter
def highlight(snippet: str | None) -> str:
    """Escape the snippet as a whole, then turn each balanced pair of sentinels into ``<mark>``.

    Escaping first is what makes ``mark_safe`` sound: the only markup in the result is the
    ``<mark>`` tags added here. Sentinels without a partner (an article may itself contain those
    private-use characters) are dropped, so the output is always well-formed.
    """
    if not snippet:
        return ""
    marked = _MARKED.sub(r"<mark>\1</mark>", escape(snippet))
    return mark_safe(_STRAY.sub("", marked))  # noqa: S308 — escaped above
