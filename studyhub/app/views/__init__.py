"""The app's pages, one function each: sign-in, consent, the rating queue, done, monitor.

The folder is not called ``pages/``: next to an entry script, Streamlit would
turn every module in a ``pages/`` folder into its own page in the sidebar,
reachable without the routing in :mod:`studyhub.app.main`.
"""

import re

__all__ = ["plain"]

_MARKDOWN = re.compile(r"([\\`*_{}\[\]<>()#+\-.!|~$])")


def plain(text: str) -> str:
    """``text`` with Markdown's special characters escaped, to show it as written."""
    return _MARKDOWN.sub(r"\\\1", text)
