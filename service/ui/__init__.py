"""The clinician view: server-rendered pages over the stored caseload (issue 5).

routes.py serves the pages, session.py signs the browser session and its CSRF tokens,
views.py turns stored records into what the templates show (flags, sparklines, charts).
No JavaScript, no external resources: the pages work on closed clinic networks.
"""
