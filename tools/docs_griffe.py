"""A Griffe extension for rtseg's API reference (mkdocs.yml, mkdocstrings ``extensions``).

rtseg's docstrings are prose written for ``help()``, with a few reST habits: Sphinx roles
(``:func:`main```), double-backtick literals and ``::`` before an indented example. Markdown
renders double backticks as code already; this turns the roles into inline code and a trailing
``::`` into ``:``, so the pages show what the author meant instead of the markup. It also
leaves out of classes the undocumented instance attributes (``self.x = x`` in ``__init__``).
"""

from __future__ import annotations

import re

import griffe

_ROLE = re.compile(r":(?:py:)?(?:func|mod|class|meth|attr|data|obj|exc|const):`~?([^`]+)`")
_LITERAL_BLOCK = re.compile(r"(\S)::[ \t]*$", re.MULTILINE)


def clean(text: str) -> str:
    text = _ROLE.sub(lambda m: f"`{m.group(1)}`", text)
    return _LITERAL_BLOCK.sub(r"\1:", text)


class ProseDocstrings(griffe.Extension):
    """Rewrite the reST markup of every docstring in the loaded package."""

    def on_package(self, *, pkg, **kwargs) -> None:
        seen = set()
        stack = [pkg]
        while stack:
            obj = stack.pop()
            if obj.path in seen:
                continue
            seen.add(obj.path)
            if obj.docstring is not None:
                obj.docstring.value = clean(obj.docstring.value)
            members = [m for m in obj.members.values() if not m.is_alias]
            if obj.is_class:
                # `self.x = x` in __init__ without a docstring says nothing on a reference page
                for m in members:
                    if m.is_attribute and m.docstring is None and "instance-attribute" in m.labels:
                        del obj.members[m.name]
            stack.extend(m for m in members if m.name in obj.members)
