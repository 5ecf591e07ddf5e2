"""The master: its pure core, the handlers by area, and the thin actor around them."""
