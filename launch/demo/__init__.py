"""``codeclm demo``: a local web page for voice cloning and continuation over trained models.

command.py (the CLI and model loading), engine.py (request checks and generation jobs), jobs.py
(one generation at a time, a bounded queue), app.py (FastAPI), images.py (PNG pictures with
numpy), page.html (the page: no assets from the internet).
"""
