"""MkDocs hook: the docstrings' Sphinx roles (``:func:`~a.b.c```, ``:class:`...```) become cross-references.

The docstrings are Google style, and their cross-references are written as Sphinx roles; mkdocstrings renders
those as the role's name followed by the code. Before the autorefs plugin resolves references, this turns each
into an optional reference: a link where the target is documented on the site, the plain name otherwise
(``~`` shows the last component only, as Sphinx does). A name without its module (``:func:`assign_splits```)
is looked up from the object whose docstring holds it outwards, among the objects of the same page.
"""

from __future__ import annotations

import re

ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|data|attr|obj|exc):<code>(~?)([\w.]+)(\(\))?</code>")
ANCHOR = re.compile(r'id="(ser_lightning(?:\.\w+)*)"')


def on_page_content(html: str, **kwargs) -> str:
    """Rewrite the roles of one page's HTML (mkdocs calls this for every page)."""
    anchors = [(m.start(), m.group(1)) for m in ANCHOR.finditer(html)]
    known = {a for _, a in anchors}

    def ref(m: re.Match) -> str:
        short, target, call = m.group(1), m.group(2), m.group(3) or ""
        shown = target.rsplit(".", 1)[-1] if short else target
        if not target.startswith("ser_lightning"):
            enclosing = next((a for pos, a in reversed(anchors) if pos < m.start()), "")
            parts = enclosing.split(".")
            for n in range(len(parts), 0, -1):
                candidate = ".".join(parts[:n] + [target])
                if candidate in known:
                    target = candidate
                    break
        return f'<autoref identifier="{target}" optional><code>{shown}{call}</code></autoref>'

    return ROLE.sub(ref, html)
