"""Live processing: watch a session folder while the microscope writes it, and run each complete tilt series
through the workflow in a chain of runs of its own (``tomoprep watch``, docs/live.md)."""
