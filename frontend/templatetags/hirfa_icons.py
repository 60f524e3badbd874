"""`{% icon "name" %}`: an icon of the sprite (static/hirfa/icons.svg, Lucide), decorative.

Icons are never the only label: the text sits beside the icon, or, where a narrow phone
hides it, stays the control's accessible name. Emoji stay in messages and reactions only:
they render differently (or as empty boxes) from one phone to the next.
"""

from __future__ import annotations

from django import template
from django.templatetags.static import static
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()


@register.simple_tag
def icon(name: str, extra_class: str = "") -> SafeString:
    classes = f"icon {extra_class}".strip()
    return format_html(
        '<svg class="{}" aria-hidden="true" focusable="false"><use href="{}#{}"></use></svg>',
        classes,
        static("hirfa/icons.svg"),
        name,
    )
