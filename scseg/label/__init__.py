"""MONAI Label integration: an app serving scseg run directories and bundles as infer models.

Importing :mod:`scseg.label.app` needs the ``label`` extra (monailabel); the rest of scseg does not.
"""
