"""Browser events: the endpoint the JavaScript snippet posts to, for WSGI, ASGI and Django.

`sitelog.agent.events.wsgi.EventsApp`, `.asgi.EventsASGIApp` and the Django URL include
(`sitelog.agent.django.urls`) all run `endpoint.EventsEndpoint`, which validates each request and
appends its events to the buffer as kind `events`. See docs/events.md.
"""
