"""The web UI: ``tomoprep serve`` runs :func:`tomoprep.web.app.create_app` for a project."""
