"""`lyra-governor`: the operator's command line (typer + rich).

One module per command group so each stays small and readable; `app.py` wires them together
and imports a module only when one of its commands runs (`app.COMMANDS`).
Heavy imports (ccxt, matplotlib, Hummingbot) happen inside commands, never at start-up, so
`lyra-governor status` answers quickly.
"""
