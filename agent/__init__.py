"""Capture: middlewares and a logging handler that append request and log records to the buffer.

Import the integration you use (`sitelog.agent.wsgi`, `.asgi`, `.django`, `.logging`); this package
imports nothing itself so that loading one integration never pulls in another's framework.
"""
