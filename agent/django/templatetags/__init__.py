"""Template tags of the sitelog Django app: `{% load sitelog %}`."""
