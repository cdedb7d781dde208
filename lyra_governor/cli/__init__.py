"""`lyra-governor`: the operator's command line (typer + rich).

One module per command group so each stays small and readable; `app.py` wires them together.
Heavy imports (ccxt, matplotlib, Hummingbot) happen inside commands, never at start-up, so
`lyra-governor status` answers quickly.
"""
