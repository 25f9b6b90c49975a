"""The bounds of numeric settings, shared by the config file and the command line.

A value past a bound is refused where it is read (the config key or the flag, exit 2)
rather than taken as it is: an hour-long typo in a timeout, or ten billion predictions
at once, is a mistake, never a wish. Kept apart from :mod:`cogfleet._config` so the
command line names the bounds in its flags without importing pydantic.
"""

from __future__ import annotations

#: The most fuzz inputs one run makes (each is a prediction; they are made up front).
MAX_FUZZ_ITERATIONS = 10_000
#: The longest ``predict_timeout`` in seconds: a day (Replicate stops a prediction after
#: 30 minutes unless its support raised the limit).
MAX_PREDICT_TIMEOUT = 86_400
#: The longest ``train_timeout`` in seconds: a week.
MAX_TRAIN_TIMEOUT = 7 * 86_400
#: The most predictions run at once (``parallel``): each holds a connection and a thread.
MAX_PARALLEL = 100
