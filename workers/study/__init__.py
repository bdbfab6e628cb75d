"""Scaling studies: the GPT-2 story (bigger models model text better and are harder to detect) measured on a
family this platform trains. plan.py turns settings into steps, runner.py drives the steps' jobs, figures.py
reads the stored results back for the public page."""
