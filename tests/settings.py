"""Settings for the test suite: the project's settings with local-development defaults.

``DEBUG`` defaults to false in ``billing_project.settings`` (and then a real ``SECRET_KEY`` is required).
The suite runs with the development defaults unless the environment says otherwise; the variable is set
before the project's settings are read because they decide the secret key and the cookie flags from it.
pytest-django still runs each test with ``settings.DEBUG = False``, as in production. Subprocesses the
tests start (a Celery worker, ``manage.py check``) inherit the variable and may override it.
"""

import os

os.environ.setdefault("DEBUG", "true")

from billing_project.settings import *  # noqa: E402,F403
