"""Import every command module so each registers itself on `app`."""

from interp.cli import models_cmd, reverse_link_cmd  # noqa: F401
