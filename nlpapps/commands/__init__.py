"""The subcommands of `nlpapps`: one `<name>_commands.py` per app (the registry names it) and
per shared group (data, export, recipe, gradients), each adding its parsers with
`add_parsers(sub)`; `common.py` holds what they share."""
