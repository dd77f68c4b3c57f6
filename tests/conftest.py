"""Hypothesis profiles: by default every run draws the same examples (CI is reproducible);
``HYPOTHESIS_PROFILE=explore pytest tests/...`` draws new random ones on each run. A failure
that exploring finds belongs in the test's explicit cases once it is fixed.
"""

import os

from hypothesis import settings

settings.register_profile("deterministic", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))
