"""SiM routing, build side: router fitting, compressed per-domain deltas, routed bundles.

The robot side (the router's residuals, the routed engine, delta decoding) lives in simokit.runtime.
"""
