"""sitelog's part of a Django project's settings.py (docs/deploy.md): merge these into yours.

Everything but the SITELOG, MIDDLEWARE, INSTALLED_APPS and LOGGING entries is the smallest
project around them (tests/test_deploy_examples.py loads this file and runs Django's checks).
"""

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "replace with your project's own")
DEBUG = False
ALLOWED_HOSTS = ["spoken-tutorial.org"]
USE_TZ = True
# Yours, including include("sitelog.agent.django.urls") for the browser events endpoint.
ROOT_URLCONF = "sitelog.agent.django.urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}

# sitelog's config file; SITELOG_* environment variables still override single keys. The buffer
# it names (buffer.path) must be on a local disk, writable by the user the workers run as: the
# sidecar (sitelog.service) runs as the same user.
SITELOG = {"config": os.environ.get("SITELOG_CONFIG", "/etc/sitelog/config.toml")}

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "sitelog.agent.django",  # system checks: a bad sitelog config fails `manage.py check`
]

MIDDLEWARE = [
    "sitelog.agent.django.SitelogMiddleware",  # first: it times and records the whole request
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

# Warnings and errors into the buffer too, shipped to MongoDB's `logs` collection.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {
        "sitelog": {"class": "sitelog.agent.logging.SitelogHandler", "level": "WARNING"},
        "console": {"class": "logging.StreamHandler"},
    },
    "root": {"handlers": ["sitelog", "console"], "level": "WARNING"},
}
