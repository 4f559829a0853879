"""Internals of the procedural scene renderer: camera, primitives, materials, layouts, ray caster."""
