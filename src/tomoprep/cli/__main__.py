"""``python -m tomoprep.cli`` runs the ``tomoprep`` command."""

from tomoprep.cli.main import main

main()
