"""The interactive front door: a renderer (plain arguments in, a result dict out) and the widgets over it."""
