"""Small geometry helpers: shapes and unit conversions."""
