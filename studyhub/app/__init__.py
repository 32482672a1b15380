"""The Streamlit rater app: thin pages over :mod:`studyhub.rating`.

``main.py`` is the entry script (``studyhub serve`` runs it with ``streamlit
run``); each page is a function in :mod:`studyhub.app.views`. Pages draw and
call the rating services, nothing else: no page imports the store's models or
runs a query (DESIGN.md: ``app -> rating -> store``).
"""
