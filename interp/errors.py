"""The one exception type for bad user input.

Library code raises `UserError` for anything the user can fix (unknown model, word not in the
vocabulary, malformed number, existing output directory). The CLI turns it into one red line and
exit code 2, never a traceback. Bugs stay ordinary exceptions so they keep their tracebacks.
"""


class UserError(Exception):
    """Bad input the user can fix; its message is shown as one line."""
