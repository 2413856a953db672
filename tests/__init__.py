import pytest

# Shared assertion helpers outside test_*.py files: let pytest show the compared values.
pytest.register_assert_rewrite("tests.metric_checks")
