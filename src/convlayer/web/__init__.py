"""A local web page for a trained checkpoint: ``convlayer serve CHECKPOINT``.

``create_app(checkpoint)`` builds the Starlette app (needs the ``web`` extra:
``pip install 'convlayer[web]'``); ``commands.register`` adds the ``serve`` command.
"""


def create_app(*args, **kwargs):
    """See ``convlayer.web.app.create_app``; imported on call so the CLI loads without Starlette."""
    from .app import create_app as _create_app

    return _create_app(*args, **kwargs)


__all__ = ["create_app"]
