"""Template helpers for the public pages: absolute URLs and JSON-LD that cannot break out of <script>."""

import json

from django import template
from django.core.serializers.json import DjangoJSONEncoder
from django.utils.html import format_html
from django.utils.safestring import mark_safe

register = template.Library()

# The escapes django.utils.html.json_script uses: with <, > and & as \u escapes the JSON cannot
# close the <script> element or open a comment, whatever the imported text contains.
_SCRIPT_ESCAPES = {ord(">"): "\\u003E", ord("<"): "\\u003C", ord("&"): "\\u0026"}


@register.filter
def json_ld(value):
    """Render ``value`` as ``<script type="application/ld+json">``, escaped like ``json_script``.

    ``json_script`` itself always says ``type="application/json"``, which search engines ignore.
    """
    data = json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False).translate(_SCRIPT_ESCAPES)
    return format_html('<script type="application/ld+json">{}</script>', mark_safe(data))


@register.simple_tag(takes_context=True)
def absolute_uri(context, path):
    """The absolute form of a path from ``{% url %}``, for canonical and OpenGraph links."""
    return context["request"].build_absolute_uri(path)
