"""Django integration: `SitelogMiddleware` for MIDDLEWARE, and this package for INSTALLED_APPS.

In INSTALLED_APPS, `"sitelog.agent.django"` adds a system check (sitelog.E001) for the config.
"""

from .middleware import SitelogMiddleware

__all__ = ["SitelogMiddleware"]
