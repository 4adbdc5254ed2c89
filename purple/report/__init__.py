"""Reports: SARIF, and later HTML/JSON/JUnit for eval runs."""
