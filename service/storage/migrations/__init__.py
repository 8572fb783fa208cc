"""Alembic migrations; a package only so that `pip install .` ships them."""
