"""Database: base models, engine configuration, migrations."""
