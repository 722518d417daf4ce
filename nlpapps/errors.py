"""The one error family of nlpapps.

Every error a user can cause derives from `NlpappsError`; its message is one line that says
what went wrong and what to do ("model folder runs/x does not exist; pass --model with a folder
made by training or export"). The `nlpapps` command prints it as `error: <message>` and exits
with status 2; anything else is a bug and keeps its traceback.

    NlpappsError
      UserError     bad input or a bad argument: a file that is not there, an empty text,
                    a value out of range
      ModelError    a model folder or file that is missing, corrupt or of another kind
      ExportError   an export that cannot be done (arguments, signatures, ops, output)
"""

EXIT_STATUS = 2  # the command's exit status for every NlpappsError


class NlpappsError(Exception):
    """A mistake the user can fix; the message says what went wrong and what to do."""


class UserError(NlpappsError):
    """Bad input or a bad argument."""


class ModelError(NlpappsError):
    """A model folder that is missing, corrupt or of the wrong kind; the message says which
    and what to do."""


class ExportError(NlpappsError):
    """An export that cannot be done: bad arguments, a model without the signatures, an op
    outside the allowed set, an unwritable output. The message says which."""
