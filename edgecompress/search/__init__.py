"""``compress search``: an Optuna study over a recipe's ``search:`` space.

schema (the section and its addresses; torch- and optuna-free, used by recipe.py), space
(values for a trial, the trial's recipe), storage (where the study lives, the trial-count
lock), trial (one ``compress run`` in a child process and what it measured), study (workers,
resume, stale trials), records (trials, Pareto front, best, closest), render (trials.json,
report.md, report.html, best.yaml).
"""
