"""Package data: London boundaries (built by scripts/build_package_data.py, OGL v3)."""
