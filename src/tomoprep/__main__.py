"""``python -m tomoprep`` runs the ``tomoprep`` command (as ``python -m tomoprep.cli`` does)."""

from tomoprep.cli.main import main

main()
