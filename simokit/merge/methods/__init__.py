"""Built-in merge methods, one module each; `registry` imports them, which runs their @register."""
