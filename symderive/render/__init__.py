"""Rendering: verdict and array text, LaTeX, pictures, Markdown, Jinja/latexmk."""
