"""The subcommands of `nlpapps`, one module per app; each adds its parsers with
`add_parsers(sub)`."""
