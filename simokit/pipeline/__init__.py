"""The pipeline on top of every part: merge studies, reports, bundle builds, routed builds and the demo.

Only the command line imports this package; nothing below it imports it back.
"""
